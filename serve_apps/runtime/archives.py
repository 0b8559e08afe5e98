"""Zip archives from tenants: judged from their central directory before anything is
extracted, then extracted with the bytes actually written capped.

A refusal is ``UnsafeArtifact`` (a ``LoaderError``): a bomb, an escaping name or a
header that lies is hostile, not merely broken. A file that is not a zip at all, or
does not decompress, is a plain ``LoaderError``.
"""

from __future__ import annotations

import shutil
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from serve_apps.runtime.loaders.base import LoaderError, UnsafeArtifact

MiB = 1024**2
GiB = 1024**3
_CHUNK = MiB
# a central-directory record is 46 bytes plus its name: this bounds what parsing costs
_DIRECTORY_BYTES_PER_ENTRY = 1024
_END = struct.Struct("<4s4H2LH")  # end of central directory record
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64 = struct.Struct("<4sQ2H2L4Q")


@dataclass(frozen=True, kw_only=True)
class ZipLimits:
    max_total_bytes: int = 2 * GiB
    max_entries: int = 10_000
    max_ratio: float = 100.0
    # entries (and archives) smaller than this may compress as well as they like
    ratio_floor: int = MiB


DEFAULT_LIMITS = ZipLimits()


def check_zip(path: Path, *, limits: ZipLimits = DEFAULT_LIMITS) -> list[zipfile.ZipInfo]:
    """The archive's entries, or UnsafeArtifact naming the limit it breaks; reads only
    the central directory (declared sizes: ``extract_zip`` caps what is really written)."""
    entries, directory_bytes = _declared_directory(path)
    _check_count(entries, limits)
    if directory_bytes > limits.max_entries * _DIRECTORY_BYTES_PER_ENTRY:
        raise UnsafeArtifact(f"the zip's central directory is {directory_bytes:,} bytes long")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
        raise LoaderError(f"not a readable zip archive: {exc}") from None
    _check_count(len(infos), limits)
    _check_totals(infos, limits)
    seen: set[str] = set()
    for info in infos:
        _check_entry(info, limits)
        if info.filename in seen:
            raise UnsafeArtifact(f"zip entry appears twice: {info.filename}")
        seen.add(info.filename)
    return infos


def extract_zip(path: Path, into: Path, *, limits: ZipLimits = DEFAULT_LIMITS) -> None:
    """``check_zip``, then each entry by a streaming copy that stops past its declared
    size or the total limit; on any failure nothing extracted is left under ``into``."""
    infos = check_zip(path, limits=limits)
    try:
        with zipfile.ZipFile(path) as zf:
            budget = limits.max_total_bytes
            for info in infos:
                budget -= _extract_entry(zf, info, into, budget)
    except BaseException:
        _clear(into)
        raise


def _declared_directory(path: Path) -> tuple[int, int]:
    """(entries, bytes) the end record declares for the central directory, read before
    zipfile parses that directory: millions of entries cost memory to parse."""
    with path.open("rb") as fp:
        size = fp.seek(0, 2)
        start = max(0, size - _END.size - 0xFFFF)  # the record ends with a comment < 64 KiB
        fp.seek(start)
        tail = fp.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or at + _END.size > len(tail):
            raise LoaderError("not a zip archive (no end of central directory record)")
        entries, directory_bytes = _END.unpack_from(tail, at)[4:6]
        if entries != 0xFFFF and directory_bytes != 0xFFFFFFFF:
            return int(entries), int(directory_bytes)
        fp.seek(max(0, start + at - _END64_LOCATOR.size))  # zip64: its own end record
        locator = fp.read(_END64_LOCATOR.size)
        if len(locator) < _END64_LOCATOR.size or locator[:4] != b"PK\x06\x07":
            raise LoaderError("not a readable zip archive (zip64 locator missing)")
        fp.seek(_END64_LOCATOR.unpack(locator)[2])
        record = fp.read(_END64.size)
        if len(record) < _END64.size or record[:4] != b"PK\x06\x06":
            raise LoaderError("not a readable zip archive (zip64 end record missing)")
        entries, directory_bytes = _END64.unpack(record)[7:9]
        return int(entries), int(directory_bytes)


def _check_count(entries: int, limits: ZipLimits) -> None:
    if entries > limits.max_entries:
        raise UnsafeArtifact(
            f"the zip holds {entries:,} entries, past the limit of {limits.max_entries:,}"
        )


def _check_totals(infos: list[zipfile.ZipInfo], limits: ZipLimits) -> None:
    total = sum(info.file_size for info in infos)
    if total > limits.max_total_bytes:
        raise UnsafeArtifact(
            f"the zip would expand to {total:,} bytes, past the limit of"
            f" {limits.max_total_bytes:,} bytes"
        )
    packed = sum(info.compress_size for info in infos)
    if total > limits.ratio_floor and total > limits.max_ratio * max(packed, 1):
        raise UnsafeArtifact(
            f"the zip expands {total / max(packed, 1):,.0f}:1, past the limit of"
            f" {limits.max_ratio:,.0f}:1"
        )


def _check_entry(info: zipfile.ZipInfo, limits: ZipLimits) -> None:
    name = PurePosixPath(info.filename)
    if name.is_absolute() or ".." in name.parts or "\\" in info.filename:
        raise UnsafeArtifact(f"zip entry escapes the archive: {info.filename}")
    if not name.parts:
        raise UnsafeArtifact(f"zip entry has no name: {info.filename!r}")
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the archiver recorded no type
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        raise UnsafeArtifact(f"zip entry is not a plain file: {info.filename}")
    if info.flag_bits & 0x1:
        raise LoaderError(f"zip entry is encrypted: {info.filename}")
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        raise UnsafeArtifact(f"zip entry's sizes disagree: {info.filename}")
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > limits.ratio_floor and ratio > limits.max_ratio:
        raise UnsafeArtifact(
            f"zip entry {info.filename} expands {ratio:,.0f}:1, past the limit of"
            f" {limits.max_ratio:,.0f}:1"
        )


def _extract_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, into: Path, budget: int) -> int:
    """Bytes written for ``info`` (names were checked: the target stays under ``into``)."""
    target = into.joinpath(*PurePosixPath(info.filename).parts)
    if info.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return 0
    allowed, written = min(info.file_size, budget), 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, target.open("xb") as dst:
            while chunk := src.read(min(_CHUNK, allowed - written + 1)):
                written += len(chunk)
                if written > allowed:
                    raise UnsafeArtifact(
                        f"zip entry {info.filename} holds more than its header declares"
                        f" or the {budget:,} bytes left of the total limit"
                    )
                dst.write(chunk)
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise UnsafeArtifact(
            f"zip entry {info.filename} does not match its header: {exc}"
        ) from None
    except (OSError, NotImplementedError, RuntimeError) as exc:
        raise LoaderError(f"zip entry {info.filename} does not extract: {exc}") from None
    return written


def _clear(into: Path) -> None:
    for child in into.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
