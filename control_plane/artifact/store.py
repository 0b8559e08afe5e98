"""Blobs of every tenant under its own prefix, content-addressed, encrypted, streamed.

One interface (``pyarrow.fs``) over two backends: a local directory (default,
``ATRIUM_HOME/artifacts``) and S3-compatible storage (``ATRIUM_ARTIFACT_URL=s3://…``).
Paths are built only from the tenant id and the sha256 of the content; uploads go
to a temporary object first and become visible only when complete and within size.
"""

from __future__ import annotations

import hashlib
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
from pyarrow import fs

from control_plane.artifact.crypto import HEADER, TAG, BlobEncryptor, CorruptBlob, blob_decryptor
from control_plane.errors import PayloadTooLarge, ValidationFailed

READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size_bytes: int


def filesystem(
    url: str,
    *,
    endpoint: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    region: str | None = None,
) -> tuple[fs.FileSystem, str]:
    """(file system, root path) for a local path or an ``s3://bucket/prefix`` URL."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        s3 = fs.S3FileSystem(
            endpoint_override=urlsplit(endpoint).netloc if endpoint else None,
            access_key=access_key,
            secret_key=secret_key,
            region=region or "us-east-1",
            scheme=urlsplit(endpoint).scheme if endpoint else "https",
            allow_bucket_creation=False,
        )
        return s3, f"{parts.netloc}{parts.path}".rstrip("/")
    local = fs.LocalFileSystem()
    local.create_dir(url, recursive=True)
    return local, url.rstrip("/")


class ArtifactStore:
    def __init__(self, filesystem: fs.FileSystem, root: str) -> None:
        self._fs = filesystem
        self._root = root

    def _path(self, tenant_id: str, name: str) -> str:
        if not tenant_id.replace("_", "").isalnum():
            raise ValueError("tenant ids are opaque identifiers, not paths")
        return f"{self._root}/tenants/{tenant_id}/{name}"

    def blob_path(self, tenant_id: str, sha256: str) -> str:
        return self._path(tenant_id, f"blobs/{sha256[:2]}/{sha256}")

    async def put(
        self,
        tenant_id: str,
        data_key: bytes,
        chunks: AsyncIterator[bytes],
        *,
        max_bytes: int,
        too_large: Exception | None = None,
    ) -> StoredBlob:
        """Stream ``chunks`` in encrypted; ``too_large`` (default 413) past ``max_bytes``,
        422 when empty. On any failure nothing is left behind."""
        temp = self._path(tenant_id, f"tmp/{uuid.uuid4().hex}")
        digest, size = hashlib.sha256(), 0
        encryptor = BlobEncryptor(data_key)
        out = await anyio.to_thread.run_sync(self._open_output, temp)
        try:
            await anyio.to_thread.run_sync(out.write, encryptor.header())
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise too_large or PayloadTooLarge(
                        f"the upload exceeds {max_bytes} bytes on this plan"
                    )
                digest.update(chunk)
                await anyio.to_thread.run_sync(out.write, encryptor.update(chunk))
            if size == 0:
                raise ValidationFailed("the upload is empty", extra={"field": "file"})
            await anyio.to_thread.run_sync(out.write, encryptor.finish())
            await anyio.to_thread.run_sync(out.close)
            sha256 = digest.hexdigest()
            await anyio.to_thread.run_sync(self._publish, temp, self.blob_path(tenant_id, sha256))
        except BaseException:
            if not out.closed:
                await anyio.to_thread.run_sync(out.close)
            await anyio.to_thread.run_sync(self._delete_quietly, temp)
            raise
        return StoredBlob(sha256, size)

    def _open_output(self, path: str) -> Any:
        self._fs.create_dir(path.rsplit("/", 1)[0], recursive=True)  # no-op on S3
        return self._fs.open_output_stream(path)

    def _publish(self, temp: str, final: str) -> None:
        if self._fs.get_file_info(final).type == fs.FileType.File:
            self._fs.delete_file(temp)  # same content is already stored
            return
        self._fs.create_dir(final.rsplit("/", 1)[0], recursive=True)
        self._fs.move(temp, final)

    def _delete_quietly(self, path: str) -> None:
        if self._fs.get_file_info(path).type == fs.FileType.File:
            self._fs.delete_file(path)

    def read(self, tenant_id: str, sha256: str, data_key: bytes) -> Iterator[bytes]:
        """The decrypted content in chunks. The GCM tag and the sha256 are verified when the
        last chunk has been read: trust nothing until the iterator has finished."""
        path = self.blob_path(tenant_id, sha256)
        with self._fs.open_input_file(path) as source:
            total = source.size()
            if total < HEADER + TAG:
                raise CorruptBlob("blob too short")
            header = source.read(HEADER)
            source.seek(total - TAG)
            tag = source.read(TAG)
            decryptor: Any = blob_decryptor(data_key, header, tag)
            source.seek(HEADER)
            remaining, digest = total - HEADER - TAG, hashlib.sha256()
            while remaining:
                plain = decryptor.update(source.read(min(READ_CHUNK, remaining)))
                remaining -= min(READ_CHUNK, remaining)
                digest.update(plain)
                yield plain
            try:
                decryptor.finalize()
            except Exception as exc:
                raise CorruptBlob("the blob was altered") from exc
        if digest.hexdigest() != sha256:
            raise CorruptBlob("the blob does not match its sha256")

    @contextmanager
    def decrypted(
        self, tenant_id: str, sha256: str, data_key: bytes, *, scratch: Path, suffix: str = ""
    ) -> Iterator[Path]:
        """The decrypted, verified content in a private temporary file under ``scratch``
        (named ``blob<suffix>``), removed on exit: loaders and Arrow need a file they can
        seek in, Ray Data one with the right extension."""
        scratch.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=scratch) as folder:
            path = Path(folder) / f"blob{suffix}"
            with path.open("wb") as out:
                for chunk in self.read(tenant_id, sha256, data_key):
                    out.write(chunk)
            yield path

    def read_all(self, tenant_id: str, sha256: str, data_key: bytes) -> bytes:
        return b"".join(self.read(tenant_id, sha256, data_key))

    def delete(self, tenant_id: str, sha256: str) -> None:
        self._delete_quietly(self.blob_path(tenant_id, sha256))

    def exists(self, tenant_id: str, sha256: str) -> bool:
        info = self._fs.get_file_info(self.blob_path(tenant_id, sha256))
        return bool(info.type == fs.FileType.File)

    def listing(self, tenant_id: str) -> list[str]:
        """Every object under the tenant's prefix (temporary ones included)."""
        selector = fs.FileSelector(self._path(tenant_id, ""), recursive=True, allow_not_found=True)
        return [i.path for i in self._fs.get_file_info(selector) if i.type == fs.FileType.File]
