"""A dataset past a limit is refused from its Parquet footer (or CSV header), before a
single page is decoded; an ordinary file still passes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from control_plane.dataset.inspect import UnreadableDataset, inspect

ROWS = 1_000


@pytest.fixture
def parquet(tmp_path: Path) -> Path:
    table = pa.table({"x": list(range(ROWS)), "y": [float(i) for i in range(ROWS)]})
    path = tmp_path / "data.parquet"
    pq.write_table(table, path, row_group_size=250)
    return path


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("pages were decoded")

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", refuse)


def test_an_ordinary_file_passes_with_the_default_limits(parquet: Path) -> None:
    shape = inspect(parquet, "parquet")
    assert shape.rows == ROWS
    assert shape.columns == [{"name": "x", "type": "int64"}, {"name": "y", "type": "double"}]


@pytest.mark.usefixtures("no_decoding")
def test_a_footer_declaring_too_many_rows_is_refused_before_decoding(parquet: Path) -> None:
    with pytest.raises(UnreadableDataset, match="rows in the footer: 1,000, past the limit of 999"):
        inspect(parquet, "parquet", max_rows=ROWS - 1)


@pytest.mark.usefixtures("no_decoding")
def test_a_footer_declaring_too_many_bytes_is_refused_before_decoding(parquet: Path) -> None:
    declared = sum(pq.ParquetFile(parquet).metadata.row_group(i).total_byte_size for i in range(4))
    with pytest.raises(UnreadableDataset, match=f"uncompressed bytes in the footer: {declared:,}"):
        inspect(parquet, "parquet", max_bytes=declared - 1)


@pytest.mark.usefixtures("no_decoding")
def test_too_many_columns_or_too_large_a_footer(parquet: Path) -> None:
    with pytest.raises(UnreadableDataset, match="columns in the footer: 2, past the limit of 1"):
        inspect(parquet, "parquet", max_columns=1)
    with pytest.raises(
        UnreadableDataset, match=r"bytes of Parquet footer: [\d,]+, past the limit of 64"
    ):
        inspect(parquet, "parquet", max_footer_bytes=64)


def test_the_default_column_limit_holds_for_parquet_and_csv(tmp_path: Path) -> None:
    names = [f"c{i}" for i in range(10_001)]
    csv = tmp_path / "wide.csv"
    csv.write_text(",".join(names) + "\n" + ",".join("1" for _ in names) + "\n")
    with pytest.raises(UnreadableDataset, match="columns: 10,001, past the limit of 10,000"):
        inspect(csv, "csv")
    wide = tmp_path / "wide.parquet"
    pq.write_table(pa.table({name: [1] for name in names}), wide)
    with pytest.raises(UnreadableDataset, match="columns in the footer: 10,001"):
        inspect(wide, "parquet")


def test_csv_rows_are_capped_while_reading(tmp_path: Path) -> None:
    csv = tmp_path / "long.csv"
    csv.write_text("a,b\n" + "1,2\n" * 20)
    assert inspect(csv, "csv", max_rows=20).rows == 20
    with pytest.raises(UnreadableDataset, match="rows: 20, past the limit of 19"):
        inspect(csv, "csv", max_rows=19)


def test_a_file_that_is_not_parquet_is_still_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(UnreadableDataset, match="not a readable parquet file"):
        inspect(path, "parquet")
