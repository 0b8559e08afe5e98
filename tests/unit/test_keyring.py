from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from control_plane.auth.keyring import KeyRing


def test_first_start_generates_a_private_key_only_the_owner_reads(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys")
    ring.ensure()
    key = ring.signing_key()
    pem = tmp_path / "keys" / f"{key.kid}.pem"
    assert pem.stat().st_mode & 0o077 == 0
    assert KeyRing(tmp_path / "keys").signing_key().kid == key.kid  # kept across restarts


def test_rotation_keeps_the_old_key_for_its_grace_then_prunes_it(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys")
    ring.ensure()
    old = ring.signing_key()
    new = ring.rotate(retire_after_s=600)
    assert ring.signing_key().kid == new.kid
    assert ring.verification_key(old.kid) is not None
    newest = ring.rotate(retire_after_s=0)  # old keys retire now
    assert ring.verification_key(old.kid) is None
    assert ring.verification_key(new.kid) is None
    assert ring.signing_key().kid == newest.kid
    ring.rotate(retire_after_s=0)
    kids = {e["kid"] for e in json.loads((tmp_path / "keys" / "keys.json").read_text())}
    assert old.kid not in kids
    assert not (tmp_path / "keys" / f"{old.kid}.pem").exists()


def test_another_process_rotation_is_noticed(tmp_path: Path) -> None:
    server = KeyRing(tmp_path / "keys")
    server.ensure()
    cli = KeyRing(tmp_path / "keys")
    new = cli.rotate(retire_after_s=600)
    assert server.verification_key(new.kid) is not None  # unknown kid triggers a reload
    server.reload(force=True)
    assert server.signing_key().kid == new.kid


def test_configured_key_is_used_and_must_be_ed25519(tmp_path: Path) -> None:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    ring = KeyRing(tmp_path / "keys", configured_pem=pem)
    ring.ensure()
    assert not (tmp_path / "keys").exists()
    assert ring.jwks()["keys"][0]["kid"] == ring.signing_key().kid
    with pytest.raises(ValueError, match="Ed25519"):
        KeyRing(
            tmp_path / "k2",
            configured_pem="-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
