"""Ed25519 keys that sign access tokens, kept under ``ATRIUM_HOME/keys``.

The newest key signs; older keys keep verifying until every token they signed has
expired, then ``rotate`` prunes them. A running process notices a rotation made
by another process (``atrium keys rotate``) within a few seconds.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm

from control_plane.kit.ids import new_id
from control_plane.kit.secret_files import write_private

_RELOAD_EVERY_S = 2.0
_KEY_ERROR = "ATRIUM_JWT_PRIVATE_KEY must be an unencrypted Ed25519 private key in PEM"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: Ed25519PrivateKey
    created_at: float
    retired_at: float | None

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(self.public))
        return {**jwk, "kid": self.kid, "alg": "EdDSA", "use": "sig"}


class KeyRing:
    """The keys on disk (or the one given by setting), reloaded when they change."""

    def __init__(self, directory: Path, *, configured_pem: str | None = None) -> None:
        self.directory = directory
        self._configured = _from_pem(configured_pem) if configured_pem else None
        self._keys: dict[str, SigningKey] = {}
        self._mtime = -1.0
        self._checked = 0.0
        self.reload(force=True)

    @property
    def manifest(self) -> Path:
        return self.directory / "keys.json"

    def ensure(self) -> None:
        """Generate the first key if there is none."""
        if self._configured is None and not self._read_manifest():
            self.rotate(retire_after_s=0)

    def rotate(self, *, retire_after_s: float) -> SigningKey:
        """Make a new signing key; the old ones verify for ``retire_after_s`` more."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        now = time.time()
        entries = [e for e in self._read_manifest() if not _expired(e, now)]
        for entry in entries:  # a rotation may shorten a key's grace, never extend it
            retire = now + retire_after_s
            entry["retired_at"] = min(entry.get("retired_at") or retire, retire)
        key = SigningKey(new_id("key"), Ed25519PrivateKey.generate(), now, None)
        _write_private(self.directory / f"{key.kid}.pem", key.private)
        entries.append({"kid": key.kid, "created_at": now, "retired_at": None})
        write_private(self.manifest, json.dumps(entries, indent=2))
        for gone in {p.stem for p in self.directory.glob("*.pem")} - {e["kid"] for e in entries}:
            (self.directory / f"{gone}.pem").unlink(missing_ok=True)
        self.reload(force=True)
        return key

    def reload(self, *, force: bool = False, throttle: bool = True) -> None:
        """Reread the keys if the manifest changed (at most every few seconds if throttled)."""
        now = time.monotonic()
        if not force and throttle and now - self._checked < _RELOAD_EVERY_S:
            return
        self._checked = now
        if self._configured is not None:
            self._keys = {self._configured.kid: self._configured}
            return
        mtime = self.manifest.stat().st_mtime if self.manifest.exists() else 0.0
        if mtime == self._mtime and not force:
            return
        keys = {}
        for entry in self._read_manifest():
            if not _expired(entry, time.time()):
                private = _from_pem((self.directory / f"{entry['kid']}.pem").read_text(), entry)
                keys[private.kid] = private
        self._keys, self._mtime = keys, mtime

    def signing_key(self) -> SigningKey:
        self.reload()
        active = [k for k in self._keys.values() if k.retired_at is None]
        if not active:
            raise RuntimeError("no signing key: run `atrium keys rotate`")
        return max(active, key=lambda k: k.created_at)

    def verification_key(self, kid: str) -> Ed25519PublicKey | None:
        key = self._keys.get(kid)
        if key is None:  # perhaps rotated by another process: one stat() tells
            self.reload(throttle=False)
            key = self._keys.get(kid)
        if key is None or _expired({"retired_at": key.retired_at}, time.time()):
            return None
        return key.public

    def jwks(self) -> dict[str, Any]:
        self.reload()
        return {"keys": [k.jwk() for k in self._keys.values()]}

    def _read_manifest(self) -> list[dict[str, Any]]:
        if not self.manifest.exists():
            return []
        entries: list[dict[str, Any]] = json.loads(self.manifest.read_text())
        return entries


def _expired(entry: dict[str, Any], now: float) -> bool:
    retired = entry.get("retired_at")
    return retired is not None and retired <= now


def _from_pem(pem: str, entry: dict[str, Any] | None = None) -> SigningKey:
    try:
        private = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{_KEY_ERROR}: {exc}") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise ValueError(_KEY_ERROR)
    if entry is None:
        raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return SigningKey("cfg_" + raw.hex()[:16], private, 0.0, None)
    return SigningKey(entry["kid"], private, entry["created_at"], entry.get("retired_at"))


def _write_private(path: Path, key: Ed25519PrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private(path, pem)
