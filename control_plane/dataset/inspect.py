"""What a dataset file holds, read with pyarrow as a stream (bounded memory)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

FORMATS = ("csv", "parquet")
MiB = 1024**2
GiB = 1024**3


class UnreadableDataset(ValueError):
    """The file is not a table of the declared format; the message says why."""


@dataclass(frozen=True)
class TableShape:
    rows: int
    columns: list[dict[str, str]]


@dataclass(frozen=True)
class _Limits:
    rows: int
    bytes: int
    columns: int
    footer_bytes: int


def inspect(
    path: Path,
    fmt: str,
    *,
    max_rows: int = 100_000_000,
    max_bytes: int = 8 * GiB,
    max_columns: int = 10_000,
    max_footer_bytes: int = 64 * MiB,
) -> TableShape:
    """Rows and typed columns of a CSV or Parquet file, reading every row once. A
    Parquet file is judged from its footer first: past a limit, nothing is decoded."""
    limits = _Limits(max_rows, max_bytes, max_columns, max_footer_bytes)
    try:
        schema, rows = _csv(path, limits) if fmt == "csv" else _parquet(path, limits)
        names = list(schema.names)  # decoded here: a header may not be UTF-8
    except (pa.ArrowException, OSError) as exc:
        raise UnreadableDataset(f"not a readable {fmt} file: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UnreadableDataset(
            f"the {fmt} header is not UTF-8 text (byte {exc.start}: {exc.reason})"
        ) from None
    duplicated = sorted(name for name, n in Counter(names).items() if n > 1)
    if duplicated:
        raise UnreadableDataset(f"repeated column name(s): {', '.join(duplicated)}")
    if not names:
        raise UnreadableDataset("the table has no columns")
    if rows == 0:
        raise UnreadableDataset("the table has no rows")
    return TableShape(
        rows, [{"name": n, "type": str(f.type)} for n, f in zip(names, schema, strict=True)]
    )


def _csv(path: Path, limits: _Limits) -> tuple[pa.Schema, int]:
    _check_quotes(path)
    reader = pa_csv.open_csv(path)  # reads the first block only (the header fits in it)
    _check("columns", len(reader.schema), limits.columns)
    return reader.schema, _count_rows(reader, limits)


def _check_quotes(path: Path) -> None:
    """pyarrow takes a quoted field that is never closed as one value running to the end
    of the file (so a broken file reads as one row). Escaped quotes come in pairs, so a
    well-formed file has an even number of them."""
    quotes = 0
    with path.open("rb") as fp:
        while chunk := fp.read(MiB):
            quotes += chunk.count(b'"')
    if quotes % 2:
        raise UnreadableDataset(
            "a quoted field is never closed (the file has an odd number of '\"')"
        )


def _parquet(path: Path, limits: _Limits) -> tuple[pa.Schema, int]:
    _check("bytes of Parquet footer", _footer_length(path), limits.footer_bytes)
    with pq.ParquetFile(path) as table:
        meta = table.metadata
        _check("columns in the footer", meta.num_columns, limits.columns)
        _check("rows in the footer", meta.num_rows, limits.rows)
        groups = (meta.row_group(i) for i in range(meta.num_row_groups))
        _check(
            "uncompressed bytes in the footer", sum(g.total_byte_size for g in groups), limits.bytes
        )
        # decode every page: a truncated or corrupt file fails here, not in a training job
        return table.schema_arrow, _count_rows(table.iter_batches(batch_size=65_536), limits)


def _footer_length(path: Path) -> int:
    """What the file's last 8 bytes say its footer takes (pyarrow would parse it whole)."""
    with path.open("rb") as fp:
        size = fp.seek(0, 2)
        fp.seek(max(0, size - 8))
        tail = fp.read(8)
    if len(tail) < 8 or tail[4:] != b"PAR1":
        return 0  # not Parquet at all: pyarrow says so in its own words
    return int.from_bytes(tail[:4], "little")


def _count_rows(batches: Iterable[pa.RecordBatch], limits: _Limits) -> int:
    rows = 0
    for batch in batches:
        rows += batch.num_rows
        _check("rows", rows, limits.rows)
    return rows


def _check(what: str, declared: int, limit: int) -> None:
    if declared > limit:
        raise UnreadableDataset(f"{what}: {declared:,}, past the limit of {limit:,}")


def format_of(filename: str | None, declared: str | None) -> str | None:
    """The declared format, else the one the file name's extension says."""
    if declared:
        return declared.lower()
    suffix = Path(filename or "").suffix.lower().lstrip(".")
    return {"csv": "csv", "parquet": "parquet", "pq": "parquet"}.get(suffix)
