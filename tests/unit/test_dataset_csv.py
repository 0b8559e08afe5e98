"""CSV files a newcomer gets wrong are refused with the reason, never read wrongly."""

from __future__ import annotations

from pathlib import Path

import pytest

from control_plane.dataset.inspect import UnreadableDataset, inspect


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "data.csv"
    path.write_bytes(data)
    return path


def test_a_header_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    with pytest.raises(UnreadableDataset, match="not UTF-8"):
        inspect(write(tmp_path, b"\x9f\xff,b\n1,2\n"), "csv")


def test_an_unterminated_quote_is_not_one_long_row(tmp_path: Path) -> None:
    with pytest.raises(UnreadableDataset, match="quoted field is never closed"):
        inspect(write(tmp_path, b'a,b\n1,"2\n3,4\n'), "csv")


def test_quoted_fields_with_escaped_quotes_and_commas_still_read(tmp_path: Path) -> None:
    shape = inspect(write(tmp_path, b'a,b\n1,"say ""hi"", then go"\n2,"x,y"\n'), "csv")
    assert shape.rows == 2
    assert [c["name"] for c in shape.columns] == ["a", "b"]
