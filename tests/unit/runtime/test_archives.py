"""Zip uploads are judged from their central directory before anything is extracted,
and what extraction writes stays within what the headers declared."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serve_apps.runtime import UnsafeArtifact, load_model
from serve_apps.runtime.archives import MiB, ZipLimits, check_zip, extract_zip
from tests.models import MATRIX, X, keras, savedmodel

BOMB = "saved/variables/variables.data-00000-of-00001"


def _zip(path: Path, entries: dict[str, int], *, noise: bool = False) -> Path:
    """Entries of so many zero bytes (or random ones, which do not compress), deflated,
    written a MiB at a time."""
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, size in entries.items():
            with zf.open(name, "w") as out:
                for start in range(0, size, MiB):
                    n = min(MiB, size - start)
                    out.write(rng.bytes(n) if noise else bytes(n))
    return path


def _declare(path: Path, file_size: int) -> Path:
    """Rewrite the first entry's uncompressed size, in its local header and in the
    central directory (what an attacker controls)."""
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        struct.pack_into("<L", data, data.index(signature) + offset, file_size)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def no_decompression(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test if any entry is opened for reading (writing builds the file)."""
    opener = zipfile.ZipFile.open

    def write_only(zf: zipfile.ZipFile, name: str, mode: str = "r", **kw: Any) -> Any:
        if mode == "r":
            raise AssertionError(f"{name} was opened for extraction")
        return opener(zf, name, mode, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(zipfile.ZipFile, "open", write_only)


@pytest.mark.usefixtures("no_decompression")
def test_a_savedmodel_declaring_3_gib_is_refused_before_extraction(tmp_path: Path) -> None:
    path = _declare(_zip(tmp_path / "model.zip", {BOMB: MiB, "saved/saved_model.pb": 10}), 3 << 30)
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(
        UnsafeArtifact, match=r"3,221,225,482 bytes, past the limit of 2,147,483,648"
    ):
        extract_zip(path, into)
    assert list(into.iterdir()) == []
    with pytest.raises(UnsafeArtifact, match="past the limit of 2,147,483,648 bytes"):
        load_model("tf-savedmodel", path, None, device="cpu")


@pytest.mark.usefixtures("no_decompression")
@pytest.mark.parametrize(("fmt", "name"), [("keras", "model.keras"), ("sklearn-skops", "m.skops")])
def test_bombs_are_refused_for_every_zip_format(tmp_path: Path, fmt: str, name: str) -> None:
    path = _zip(tmp_path / name, {"model.weights.h5": 64 * MiB})  # real zeros, ~1000:1
    with pytest.raises(UnsafeArtifact, match=r"expands 1,0\d\d:1, past the limit of 100:1"):
        load_model(fmt, path, None if fmt == "keras" else MATRIX, device="cpu")


@pytest.mark.usefixtures("no_decompression")
def test_too_many_entries(tmp_path: Path) -> None:
    path = tmp_path / "model.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(10_001):
            zf.writestr(f"saved/assets/{i}", b"")
    with pytest.raises(UnsafeArtifact, match="10,001 entries, past the limit of 10,000"):
        load_model("tf-savedmodel", path, None, device="cpu")


def test_an_end_record_claiming_millions_of_entries_is_refused_unparsed(tmp_path: Path) -> None:
    path = _zip(tmp_path / "model.zip", {"a": 1})
    data = bytearray(path.read_bytes())
    end = data.rindex(b"PK\x05\x06")
    struct.pack_into("<HHL", data, end + 8, 0xFFFE, 0xFFFE, 2_000_000_000)
    path.write_bytes(bytes(data))
    with pytest.raises(UnsafeArtifact, match="65,534 entries, past the limit of 10,000"):
        check_zip(path)
    with pytest.raises(UnsafeArtifact, match="central directory is 2,000,000,000 bytes"):
        check_zip(path, limits=ZipLimits(max_entries=100_000))


def test_a_header_that_lies_small_is_stopped_during_extraction(tmp_path: Path) -> None:
    path = _declare(_zip(tmp_path / "model.zip", {BOMB: 8 * MiB}), 4096)
    assert check_zip(path)[0].file_size == 4096  # the declared sizes pass every limit
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(UnsafeArtifact, match=f"{BOMB} does not match its header"):
        extract_zip(path, into)
    assert list(into.iterdir()) == []


def test_extraction_stops_at_the_total_limit_even_if_the_check_was_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The streaming copy caps bytes itself rather than trusting check_zip alone."""
    from serve_apps.runtime import archives

    path = _zip(tmp_path / "model.zip", {"a": MiB, "b": 2 * MiB}, noise=True)
    infos = check_zip(path)
    monkeypatch.setattr(archives, "check_zip", lambda *_a, **_k: infos)
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(UnsafeArtifact, match="zip entry b holds more than"):
        extract_zip(path, into, limits=ZipLimits(max_total_bytes=2 * MiB))
    assert list(into.iterdir()) == []


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "saved/../../x", "saved\\..\\x"])
def test_escaping_names_are_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / "model.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(zipfile.ZipInfo(name), b"x")
    with pytest.raises(UnsafeArtifact, match="escapes the archive"):
        check_zip(path)


def test_a_plain_zip_extracts_whole(tmp_path: Path) -> None:
    path = _zip(tmp_path / "model.zip", {"saved/a": 3 * MiB, "saved/b/c": 10}, noise=True)
    into = tmp_path / "into"
    into.mkdir()
    extract_zip(path, into)
    assert (into / "saved/a").stat().st_size == 3 * MiB
    assert (into / "saved/b/c").stat().st_size == 10


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "maker"), [("tf-savedmodel", savedmodel), ("keras", keras)])
def test_legitimate_tensorflow_models_still_load(tmp_path: Path, fmt: str, maker: object) -> None:
    path, _, direct = maker(tmp_path)  # type: ignore[operator]
    model = load_model(fmt, path, None, device="cpu")
    (name,) = [spec.name for spec in model.signature.inputs]
    got = next(iter(model.predict({name: X[:3]}).values()))
    np.testing.assert_allclose(got, direct(X[:3]), rtol=1e-5, atol=1e-6)
