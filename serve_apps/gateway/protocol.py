"""Open Inference Protocol v2 (JSON and the binary tensor extension tritonclient uses)
and the KServe v1 ``:predict`` form, to and from numpy arrays keyed by input name.

Pure functions; every error is a ``ProtocolError`` whose message names the tensor.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from serve_apps.runtime.signature import Signature

HEADER_LENGTH = "inference-header-content-length"
V2_TYPES = {
    "BOOL": np.dtype(bool),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_NAMES = {dtype: name for name, dtype in V2_TYPES.items()}
_SIGNATURE_TYPES = {
    "float32": "FP32",
    "float64": "FP64",
    "int32": "INT32",
    "int64": "INT64",
    "bool": "BOOL",
    "string": "BYTES",
}


class ProtocolError(ValueError):
    """The request does not follow the protocol; the message says where."""


@dataclass(frozen=True)
class V2Request:
    id: str | None
    inputs: dict[str, np.ndarray]
    binary_outputs: dict[str, bool]  # requested output name -> as binary
    all_binary: bool


MAX_DIMS = 32
MAX_ELEMENTS = 2**31  # far beyond any body the gateway accepts


def parse_v2(body: bytes, header_length: str | None) -> V2Request:
    """Parse an infer request; ``header_length`` is the binary extension's header."""
    json_part, binary = _split(body, header_length)
    request = _json(json_part)
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise ProtocolError("the request needs an 'inputs' list")
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError("'id' must be a string")
    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for spec in request["inputs"]:
        name, array, used = _input(spec, binary, offset)
        if name in inputs:
            raise ProtocolError(f"input '{name}' appears twice")
        inputs[name] = array
        offset += used
    if offset != len(binary):
        raise ProtocolError(f"{len(binary) - offset} bytes of binary data belong to no input")
    return V2Request(
        id=request_id,
        inputs=inputs,
        binary_outputs=_outputs(request.get("outputs")),
        all_binary=bool(_parameters(request, "the request").get("binary_data_output", False)),
    )


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"the request body is not JSON: {exc}") from None
    except RecursionError:
        raise ProtocolError("the request body is nested too deeply") from None


def _parameters(holder: dict[str, Any], what: str) -> dict[str, Any]:
    params = holder.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ProtocolError(f"{what}: 'parameters' must be an object")
    return params


def _outputs(outputs: Any) -> dict[str, bool]:
    """Requested output name -> whether as binary."""
    if outputs is None:
        return {}
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise ProtocolError("'outputs' must be a list of objects")
    wanted = {}
    for o in outputs:
        if not isinstance(o.get("name"), str):
            raise ProtocolError("each requested output needs a 'name'")
        params = _parameters(o, f"output '{o['name']}'")
        wanted[o["name"]] = bool(params.get("binary_data", False))
    return wanted


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        raise ProtocolError("Inference-Header-Content-Length is not a number") from None
    if not 0 <= length <= len(body):
        raise ProtocolError("Inference-Header-Content-Length exceeds the body")
    return body[:length], body[length:]


def _input(spec: Any, binary: bytes, offset: int) -> tuple[str, np.ndarray, int]:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ProtocolError("each input needs a 'name'")
    name, datatype = spec["name"], spec.get("datatype")
    dtype = V2_TYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise ProtocolError(f"input '{name}': unknown datatype {datatype!r}")
    shape = _shape(name, spec.get("shape"))
    size = _parameters(spec, f"input '{name}'").get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ProtocolError(f"input '{name}': binary_data_size must be a byte count")
        raw = binary[offset : offset + size]
        if len(raw) != size:
            raise ProtocolError(f"input '{name}': binary data is shorter than its binary_data_size")
        return name, _from_binary(name, raw, dtype, shape), size
    if "data" not in spec:
        raise ProtocolError(f"input '{name}': no 'data'")
    return name, _from_json(name, spec["data"], dtype, shape), 0


def _shape(name: str, shape: Any) -> list[int]:
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ProtocolError(f"input '{name}': 'shape' must be a list of sizes")
    if len(shape) > MAX_DIMS or math.prod(shape) > MAX_ELEMENTS:
        raise ProtocolError(f"input '{name}': shape {shape} is too large")
    return shape


def _from_json(name: str, data: Any, dtype: np.dtype[Any], shape: list[int]) -> np.ndarray:
    if not isinstance(data, list):
        raise ProtocolError(f"input '{name}': 'data' must be a list")
    try:
        if dtype.kind == "O":
            array = np.array(_strings(name, data), dtype=object)
        else:
            array = np.asarray(data, dtype=dtype)
        return array.reshape(shape)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ProtocolError(
            f"input '{name}': the values do not fit shape {shape} as {_NAMES[dtype]} ({exc})"
        ) from None
    except RecursionError:
        raise ProtocolError(f"input '{name}': 'data' is nested too deeply") from None


def _strings(name: str, data: list[Any]) -> list[Any]:
    """BYTES data: strings, flat or nested in lists."""
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            if not isinstance(item, str):
                raise ProtocolError(f"input '{name}': BYTES values must be strings")
            flat.append(item)
        else:
            stack.pop()
    return flat


def _from_binary(name: str, raw: bytes, dtype: np.dtype[Any], shape: list[int]) -> np.ndarray:
    if dtype.kind == "O":
        array = np.array(_bytes_elements(name, raw), dtype=object)
    else:
        if len(raw) % dtype.itemsize:
            raise ProtocolError(f"input '{name}': {len(raw)} bytes is not a whole number of values")
        array = np.frombuffer(raw, dtype=dtype)
    if array.size != math.prod(shape):
        raise ProtocolError(f"input '{name}': {array.size} values do not fit shape {shape}")
    return array.reshape(shape)


def _bytes_elements(name: str, raw: bytes) -> list[bytes]:
    """BYTES in the binary extension: each element a little-endian u32 length, then it."""
    items, pos = [], 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise ProtocolError(f"input '{name}': a BYTES element's length is cut short")
        (length,) = struct.unpack_from("<I", raw, pos)
        if pos + 4 + length > len(raw):
            raise ProtocolError(f"input '{name}': a BYTES element is shorter than its length")
        items.append(raw[pos + 4 : pos + 4 + length])
        pos += 4 + length
    return items


def v2_response(
    *,
    model_name: str,
    model_version: str,
    request: V2Request,
    outputs: Mapping[str, np.ndarray],
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of an infer response (binary where the client asked)."""
    wanted = request.binary_outputs or dict.fromkeys(outputs, request.all_binary)
    described, chunks = [], []
    for name, binary in wanted.items():
        if name not in outputs:
            raise ProtocolError(f"unknown output '{name}' (outputs: {', '.join(outputs)})")
        array = np.asarray(outputs[name])
        entry: dict[str, Any] = {
            "name": name,
            "datatype": _NAMES.get(array.dtype, "BYTES" if array.dtype.kind in "OSU" else "FP32"),
            "shape": list(array.shape),
        }
        if binary:
            raw = _to_binary(array)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = _to_json(array)
        described.append(entry)
    header: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request.id is not None:
        header["id"] = request.id
    header["outputs"] = described
    head = json.dumps(header, separators=(",", ":")).encode()
    if not chunks:
        return head, {"content-type": "application/json"}
    return head + b"".join(chunks), {
        "content-type": "application/octet-stream",
        HEADER_LENGTH: str(len(head)),
    }


def _to_binary(array: np.ndarray) -> bytes:
    if array.dtype.kind in "OSU":
        parts = []
        for item in array.reshape(-1):
            data = item if isinstance(item, bytes) else str(item).encode()
            parts.append(struct.pack("<I", len(data)) + data)
        return b"".join(parts)
    if array.dtype not in _NAMES:
        array = array.astype(np.float32)
    return np.ascontiguousarray(array).tobytes()


def _to_json(array: np.ndarray) -> list[Any]:
    flat = array.reshape(-1)
    if array.dtype.kind in "OSU":
        return [x.decode() if isinstance(x, bytes) else str(x) for x in flat]
    return list(flat.tolist())


def server_metadata() -> dict[str, Any]:
    """``GET /v2``: who answers, and the protocol extensions it speaks."""
    try:
        version = importlib.metadata.version("atrium")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a checkout
        version = "unknown"
    return {"name": "atrium", "version": version, "extensions": ["binary_tensor_data"]}


def model_metadata(name: str, versions: list[str], signature: Signature) -> dict[str, Any]:
    """``GET /v2/models/{name}``: inputs and outputs as v2 tensors."""

    def tensor(spec: Any) -> dict[str, Any]:
        return {
            "name": spec.name,
            "datatype": _SIGNATURE_TYPES.get(spec.dtype, "FP32"),
            "shape": spec.shape,
        }

    return {
        "name": name,
        "versions": versions,
        "platform": "atrium",
        "inputs": [tensor(s) for s in signature.inputs],
        "outputs": [tensor(s) for s in signature.outputs],
    }


def parse_v1(body: bytes, signature: Signature) -> dict[str, np.ndarray]:
    """``{"instances": [...]}``: rows of the one input, or one object per row."""
    request = _json(body)
    instances = request.get("instances") if isinstance(request, dict) else None
    if not isinstance(instances, list) or not instances:
        raise ProtocolError("the request needs a non-empty 'instances' list")
    if all(isinstance(row, dict) for row in instances):
        names = [s.name for s in signature.inputs]
        try:
            columns = {n: [row[n] for row in instances] for n in names}
        except KeyError as exc:
            raise ProtocolError(f"an instance lacks input {exc}") from None
    elif len(signature.inputs) == 1:
        columns = {signature.inputs[0].name: instances}
    else:
        raise ProtocolError("this model has several inputs: send one object per instance")
    dtypes = {s.name: s.numpy_dtype() for s in signature.inputs}
    out = {}
    for name, values in columns.items():
        try:
            out[name] = np.asarray(values, dtype=dtypes[name])
        except (ValueError, TypeError, OverflowError) as exc:
            raise ProtocolError(
                f"input '{name}': the instances do not form one array ({exc})"
            ) from None
        except RecursionError:
            raise ProtocolError(f"input '{name}': the instances are nested too deeply") from None
    return out


def v1_response(outputs: Mapping[str, np.ndarray]) -> bytes:
    """``{"predictions": [...]}``: one value per row (an object per row when several)."""
    if len(outputs) == 1:
        (array,) = outputs.values()
        return json.dumps({"predictions": _rows(array)}).encode()
    columns = {name: _rows(array) for name, array in outputs.items()}
    rows = [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]
    return json.dumps({"predictions": rows}).encode()


def _rows(array: np.ndarray) -> list[Any]:
    if array.dtype.kind in "OSU":
        return [x.decode() if isinstance(x, bytes) else str(x) for x in array.tolist()]
    return list(array.tolist())
