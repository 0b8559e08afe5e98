"""The model runtime against calling each framework directly, per format.

For a tiny model of each format (trained here): cold load + first prediction through
``serve_apps.runtime.load_model``, then batch prediction throughput (batches of 256
rows) through the runtime versus the same artifact loaded and called with the
framework's own API (same thread settings), in the same process, alternating
rounds. Target: runtime / direct ≥ 0.9.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from serve_apps.runtime import FORMATS, load_model
from serve_apps.runtime.samples import MAKERS

BATCH = np.random.default_rng(0).normal(size=(256, 4)).astype(np.float32)
SECONDS = 1.0


def _rate(call: Callable[[], object]) -> float:
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < SECONDS:
        call()
        n += 1
    return n * len(BATCH) / (time.perf_counter() - started)


def _direct(fmt: str, path: Path) -> Callable[[np.ndarray], object]:
    """The artifact loaded and called with its framework's own API, no wrapper."""
    if fmt == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # as the runtime configures it
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {"x": x})
    if fmt == "xgboost":
        import xgboost as xgb

        booster = xgb.Booster(model_file=str(path))
        booster.set_param({"nthread": 1})
        return lambda x: booster.inplace_predict(x)
    if fmt == "sklearn-skops":
        import skops.io as sio

        estimator = sio.load(path, trusted=sio.get_untrusted_types(file=path))
        return lambda x: estimator.predict(x)
    if fmt in ("torchscript", "torch-export"):
        import torch

        if fmt == "torchscript":
            module = torch.jit.load(str(path))  # type: ignore[no-untyped-call]
        else:
            module = torch.export.load(str(path)).module()

        def run(x: np.ndarray) -> object:
            with torch.inference_mode():
                return module(torch.from_numpy(x)).numpy()

        return run
    if fmt == "keras":
        import keras

        model = keras.saving.load_model(path, compile=False)
        return lambda x: keras.ops.convert_to_numpy(model(x, training=False))
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        from serve_apps.runtime.loaders.tensorflow import safe_extract

        safe_extract(path, Path(tmp))
        fn = tf.saved_model.load(str(next(Path(tmp).rglob("saved_model.pb")).parent))
    serve = fn.signatures["serving_default"]
    return lambda x: {k: v.numpy() for k, v in serve(x=tf.constant(x)).items()}


def measure(fmt: str, directory: Path) -> tuple[float, float, float]:
    path, signature, _ = MAKERS[fmt](directory)
    direct = _direct(fmt, path)
    started = time.perf_counter()
    model = load_model(fmt, path, signature, device="cpu")
    name = model.signature.inputs[0].name
    model.predict({name: BATCH[:1]})
    cold = time.perf_counter() - started
    wrapped, raw = [], []
    for _ in range(3):
        wrapped.append(_rate(lambda: model.predict({name: BATCH})))
        raw.append(_rate(lambda: direct(BATCH)))
    return cold, statistics.median(wrapped), statistics.median(raw)


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in FORMATS:
            directory = Path(tmp) / fmt
            directory.mkdir()
            rows.append((fmt, *measure(fmt, directory)))
    print(f"batches of {len(BATCH)} rows, median of 3 rounds of {SECONDS}s each, CPU")
    header = ("format", "cold load+1st", "runtime rows/s", "direct rows/s", "ratio")
    print("{:<14} {:>14} {:>15} {:>14} {:>6}".format(*header))
    for fmt, cold, wrapped, raw in rows:
        print(
            f"{fmt:<14} {cold * 1000:>11.0f} ms {wrapped:>15.0f} {raw:>14.0f} {wrapped / raw:>6.2f}"
        )
    worst = min(wrapped / raw for _, _, wrapped, raw in rows)
    print(f"lowest ratio runtime / direct: {worst:.2f}  (target >= 0.90)")


if __name__ == "__main__":
    main()
