"""Protocol parsing below a server: whatever a caller sends, the answer is a
``ProtocolError`` (400) naming the problem, never another exception (500)."""

from __future__ import annotations

import contextlib
import json
import random
import struct
from collections.abc import Mapping

import numpy as np
import pytest

from serve_apps.gateway import protocol
from serve_apps.gateway.protocol import ProtocolError, parse_v1, parse_v2
from serve_apps.runtime.signature import Signature

SIGNATURE = Signature.model_validate(
    {
        "inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 2]}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": [-1]}],
    }
)


def binary_request(spec: Mapping[str, object], raw: bytes) -> tuple[bytes, str]:
    head = json.dumps({"inputs": [spec]}).encode()
    return head + raw, str(len(head))


def bytes_input(shape: list[int], raw: bytes) -> tuple[bytes, str]:
    spec = {
        "name": "s",
        "datatype": "BYTES",
        "shape": shape,
        "parameters": {"binary_data_size": len(raw)},
    }
    return binary_request(spec, raw)


def test_a_well_formed_request_parses() -> None:
    body = json.dumps(
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]}
    ).encode()
    parsed = parse_v2(body, None)
    assert parsed.inputs["x"].tolist() == [[1.0, 2.0]]


def test_binary_bytes_elements_round_trip() -> None:
    raw = struct.pack("<I", 2) + b"hi" + struct.pack("<I", 0)
    parsed = parse_v2(*bytes_input([2], raw))
    assert parsed.inputs["s"].tolist() == [b"hi", b""]


@pytest.mark.parametrize(
    "raw",
    [
        struct.pack("<I", 10) + b"abc",  # an element shorter than its length prefix
        b"\x01\x00",  # a length prefix cut short
        struct.pack("<I", 2**32 - 1),  # a prefix far past the end
    ],
)
def test_a_malformed_bytes_tensor_is_a_400(raw: bytes) -> None:
    with pytest.raises(ProtocolError, match="'s'"):
        parse_v2(*bytes_input([1], raw))


def test_deeply_nested_json_is_a_400() -> None:
    body = b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(ProtocolError):
        parse_v2(body, None)


def test_deeply_nested_data_is_a_400() -> None:
    data = "[" * 5_000 + "1" + "]" * 5_000
    body = f'{{"inputs": [{{"name": "x", "datatype": "FP32", "shape": [1], "data": {data}}}]}}'
    with pytest.raises(ProtocolError):
        parse_v2(body.encode(), None)


@pytest.mark.parametrize(
    "shape",
    [
        [2**62, 4],  # the element count overflows int64 to 0
        [2**40, 2**40],
        [2**63],
        [True, 1],
        [1] * 100,  # more dimensions than numpy has
    ],
)
def test_a_shape_that_overflows_is_a_400(shape: list[int]) -> None:
    spec = {"name": "x", "datatype": "FP32", "shape": shape, "parameters": {"binary_data_size": 0}}
    with pytest.raises(ProtocolError, match="'x'"):
        parse_v2(*binary_request(spec, b""))
    spec = {"name": "x", "datatype": "FP32", "shape": shape, "data": []}
    with pytest.raises(ProtocolError, match="'x'"):
        parse_v2(json.dumps({"inputs": [spec]}).encode(), None)


@pytest.mark.parametrize("size", ["12", -1, 1.5, True, None, [1], 2**70])
def test_a_bad_binary_data_size_is_a_400(size: object) -> None:
    spec = {"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": size}}
    if size is None:
        spec["data"] = [1.0]
        parse_v2(*binary_request(spec, b""))  # no size: the JSON data is used
        return
    with pytest.raises(ProtocolError, match="'x'"):
        parse_v2(*binary_request(spec, b"\0" * 4))


@pytest.mark.parametrize(
    "request_",
    [
        {
            "inputs": [
                {"name": "x", "datatype": "FP32", "shape": [1], "data": [1], "parameters": [1]}
            ]
        },
        {"inputs": [], "parameters": "yes"},
        {"inputs": [], "outputs": [{"name": "y", "parameters": 3}]},
        {"inputs": [], "outputs": "y"},
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": {"a": 1}}]},
        {"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1], "data": [{"a": 1}]}]},
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": ["nan?"]}]},
        {"inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [10**30]}]},
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [[1], [2, 3]]}]},
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}] * 2},
        {"id": {"not": "a string"}, "inputs": []},
    ],
)
def test_malformed_json_requests_are_400s(request_: dict[str, object]) -> None:
    with pytest.raises(ProtocolError):
        parse_v2(json.dumps(request_).encode(), None)


@pytest.mark.parametrize(
    "body",
    [
        b'{"instances": [[1, 2], [3]]}',
        b'{"instances": [{"x": [1, 2]}, {"y": 1}]}',
        b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"instances": [' + b"[" * 5_000 + b"1" + b"]" * 5_000 + b"]}",
        b'{"instances": [["a", "b"]]}',
        b"[1]",
        b"\xff\xfe",
    ],
)
def test_malformed_v1_requests_are_400s(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_v1(body, SIGNATURE)


def test_random_corruptions_never_escape_as_other_errors() -> None:
    spec = {
        "name": "x",
        "datatype": "FP32",
        "shape": [2, 2],
        "parameters": {"binary_data_size": 16},
    }
    body, length = binary_request(spec, np.arange(4, dtype=np.float32).tobytes())
    strings = bytes_input([2], struct.pack("<I", 1) + b"a" + struct.pack("<I", 1) + b"b")
    rng = random.Random(7)
    for base, header in ((body, length), strings):
        for _ in range(3_000):
            mutated = bytearray(base)
            for _ in range(rng.randint(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            with contextlib.suppress(ProtocolError):
                parse_v2(bytes(mutated), header)


def test_responses_of_hostile_outputs_are_protocol_errors_or_bytes() -> None:
    parsed = parse_v2(b'{"inputs": [], "outputs": [{"name": "z"}]}', None)
    with pytest.raises(ProtocolError, match="unknown output 'z'"):
        protocol.v2_response(
            model_name="m", model_version="1", request=parsed, outputs={"y": np.zeros(1)}
        )


def test_server_metadata_names_the_server_and_its_extensions() -> None:
    metadata = protocol.server_metadata()
    assert metadata["name"] == "atrium"
    assert metadata["version"]
    assert "binary_tensor_data" in metadata["extensions"]
