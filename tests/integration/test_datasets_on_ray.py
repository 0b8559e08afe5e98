"""A stored dataset, decrypted for a job, is what Ray Data reads."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from control_plane.artifact.crypto import new_data_key
from control_plane.artifact.store import ArtifactStore, filesystem
from control_plane.dataset.inspect import inspect

pytestmark = [pytest.mark.ray, pytest.mark.slow]
TENANT = "ten_01ray"
CSV = b"age,income,churned\n34,52000.5,0\n51,61000,1\n29,38000.25,0\n"


def _parquet() -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"x": [1.0, 2.0, 3.0, 4.0, 5.0], "y": [0, 1, 0, 1, 1]}), sink)
    return sink.getvalue()


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 16):
        yield data[start : start + 16]


@pytest.mark.parametrize(
    ("fmt", "content"), [("csv", CSV), ("parquet", _parquet())], ids=["csv", "parquet"]
)
def test_ray_data_reads_a_stored_dataset(
    ray_cluster: Any, tmp_path: Path, fmt: str, content: bytes
) -> None:
    store, key = ArtifactStore(*filesystem(str(tmp_path / "artifacts"))), new_data_key()
    blob = anyio.run(lambda: store.put(TENANT, key, _chunks(content), max_bytes=10**6))
    scratch = tmp_path / "scratch"
    with store.decrypted(TENANT, blob.sha256, key, scratch=scratch, suffix=f".{fmt}") as path:
        shape = inspect(path, fmt)
        reader = ray_cluster.data.read_csv if fmt == "csv" else ray_cluster.data.read_parquet
        data = reader(str(path))
        assert data.count() == shape.rows
        assert [c["name"] for c in shape.columns] == list(data.schema().names)
        first = data.take(1)[0]
    assert set(first) == {c["name"] for c in shape.columns}
    assert not any(scratch.iterdir())  # the plaintext copy is gone
