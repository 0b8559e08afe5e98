"""What a dataset file holds, read with pyarrow as a stream (bounded memory)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

FORMATS = ("csv", "parquet")


class UnreadableDataset(ValueError):
    """The file is not a table of the declared format; the message says why."""


@dataclass(frozen=True)
class TableShape:
    rows: int
    columns: list[dict[str, str]]


def inspect(path: Path, fmt: str) -> TableShape:
    """Rows and typed columns of a CSV or Parquet file, reading every row once."""
    try:
        schema, rows = _csv(path) if fmt == "csv" else _parquet(path)
    except (pa.ArrowException, OSError) as exc:
        raise UnreadableDataset(f"not a readable {fmt} file: {exc}") from None
    duplicated = sorted(name for name, n in Counter(schema.names).items() if n > 1)
    if duplicated:
        raise UnreadableDataset(f"repeated column name(s): {', '.join(duplicated)}")
    if not schema.names:
        raise UnreadableDataset("the table has no columns")
    if rows == 0:
        raise UnreadableDataset("the table has no rows")
    return TableShape(rows, [{"name": f.name, "type": str(f.type)} for f in schema])


def _csv(path: Path) -> tuple[pa.Schema, int]:
    reader = pa_csv.open_csv(path)
    return reader.schema, sum(batch.num_rows for batch in reader)


def _parquet(path: Path) -> tuple[pa.Schema, int]:
    with pq.ParquetFile(path) as table:
        # decode every page: a truncated or corrupt file fails here, not in a training job
        rows = sum(batch.num_rows for batch in table.iter_batches(batch_size=65_536))
        return table.schema_arrow, rows


def format_of(filename: str | None, declared: str | None) -> str | None:
    """The declared format, else the one the file name's extension says."""
    if declared:
        return declared.lower()
    suffix = Path(filename or "").suffix.lower().lstrip(".")
    return {"csv": "csv", "parquet": "parquet", "pq": "parquet"}.get(suffix)
