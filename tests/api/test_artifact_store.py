"""The artifact store on a local directory and on a real S3-protocol server (moto)."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from control_plane.artifact.crypto import CorruptBlob, MasterKey, new_data_key
from control_plane.artifact.store import ArtifactStore, filesystem
from control_plane.errors import PayloadTooLarge, ValidationFailed

TENANT = "ten_01abc"
KEY = new_data_key()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return ArtifactStore(*filesystem(str(tmp_path / "artifacts")))
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = f"b{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="k",
        aws_secret_access_key="s",
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    return ArtifactStore(
        *filesystem(f"s3://{bucket}/atrium", endpoint=endpoint, access_key="k", secret_key="s")
    )


async def _chunks(
    data: bytes, size: int = 7_000, fail_after: int | None = None
) -> AsyncIterator[bytes]:
    for n, start in enumerate(range(0, len(data), size)):
        if fail_after is not None and n == fail_after:
            raise ConnectionResetError("client went away")
        yield data[start : start + size]


def _put(store: ArtifactStore, data: bytes, **kwargs: int | None) -> object:
    max_bytes = kwargs.pop("max_bytes", None) or 10**9
    return asyncio.run(store.put(TENANT, KEY, _chunks(data, **kwargs), max_bytes=max_bytes))  # type: ignore[arg-type]


def test_round_trip_is_content_addressed_and_encrypted_at_rest(store: ArtifactStore) -> None:
    data = b"model weights " * 5_000
    blob = _put(store, data)
    sha = hashlib.sha256(data).hexdigest()
    assert (blob.sha256, blob.size_bytes) == (sha, len(data))  # type: ignore[attr-defined]
    assert store.read_all(TENANT, sha, KEY) == data
    assert store.listing(TENANT) == [store.blob_path(TENANT, sha)]
    with store._fs.open_input_file(store.blob_path(TENANT, sha)) as raw:
        stored = raw.read()
    assert b"model weights" not in stored and len(stored) == len(data) + 32
    _put(store, data)  # the same content again: still one object
    assert len(store.listing(TENANT)) == 1


@pytest.mark.parametrize(
    ("data", "kwargs", "error"),
    [
        (b"x" * 50_000, {"max_bytes": 20_000}, PayloadTooLarge),
        (b"", {}, ValidationFailed),
        (b"y" * 50_000, {"fail_after": 3}, ConnectionResetError),
    ],
    ids=["over-limit", "empty", "interrupted"],
)
def test_failed_uploads_leave_nothing(
    store: ArtifactStore, data: bytes, kwargs: dict[str, int], error: type[Exception]
) -> None:
    with pytest.raises(error):
        _put(store, data, **kwargs)
    assert store.listing(TENANT) == []


def test_tampering_and_wrong_keys_are_detected(store: ArtifactStore) -> None:
    data = b"abc" * 10_000
    sha = _put(store, data).sha256  # type: ignore[attr-defined]
    with pytest.raises(CorruptBlob):
        store.read_all(TENANT, sha, new_data_key())
    path = store.blob_path(TENANT, sha)
    with store._fs.open_input_file(path) as raw:
        stored = bytearray(raw.read())
    stored[100] ^= 1
    with store._fs.open_output_stream(path) as out:
        out.write(bytes(stored))
    with pytest.raises(CorruptBlob):
        store.read_all(TENANT, sha, KEY)


def test_paths_come_only_from_ids(store: ArtifactStore) -> None:
    with pytest.raises(ValueError, match="opaque"):
        store.blob_path("../other", "ab" * 32)
    assert f"/tenants/{TENANT}/blobs/" in store.blob_path(TENANT, "ab" * 32)


def test_data_keys_are_wrapped_per_tenant() -> None:
    master = MasterKey(new_data_key())
    wrapped = master.wrap(KEY, TENANT)
    assert master.unwrap(wrapped, TENANT) == KEY
    with pytest.raises(CorruptBlob):
        master.unwrap(wrapped, "ten_other")  # bound to its tenant
    with pytest.raises(CorruptBlob):
        MasterKey(new_data_key()).unwrap(wrapped, TENANT)
    with pytest.raises(ValueError, match="32 bytes"):
        MasterKey.from_b64("c2hvcnQ=")


def test_each_tenant_gets_one_data_key_stored_wrapped(api: object) -> None:
    from sqlalchemy import text

    from control_plane.artifact.keys import DataKeys, master_key_text
    from tests.api.world import Api, build_world, run_async

    assert isinstance(api, Api)
    world = build_world(api)
    master = master_key_text(api.settings)

    async def run() -> tuple[bytes, bytes, bytes, str]:
        first, second = DataKeys(api.services.db, master), DataKeys(api.services.db, master)
        a, b = await asyncio.gather(
            first.for_tenant(world.acme.id), second.for_tenant(world.acme.id)
        )
        other = await first.for_tenant(world.globex.id)
        async with api.services.db.engine.connect() as conn:
            wrapped = (
                await conn.execute(
                    text("SELECT wrapped FROM tenant_keys WHERE tenant_id = :t"),
                    {"t": world.acme.id},
                )
            ).scalar_one()
        return a, b, other, wrapped

    a, b, other, wrapped = run_async(api, run)
    assert a == b != other and len(a) == 32
    assert a not in wrapped.encode() and a.hex() not in wrapped
