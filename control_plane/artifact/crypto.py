"""Envelope encryption of blobs: AES-256-GCM per blob with a per-tenant data key,
data keys wrapped (AES-256-GCM) by the master key from settings.

Blob layout: b"ATR1" | 12-byte nonce | ciphertext | 16-byte tag.
"""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"ATR1"
NONCE = 12
TAG = 16
HEADER = len(MAGIC) + NONCE


class CorruptBlob(ValueError):
    """The blob is not ours, was altered, or the key is wrong."""


class MasterKey:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the master key must be 32 bytes (base64 in ATRIUM_MASTER_KEY)")
        self._aead = AESGCM(key)

    @classmethod
    def from_b64(cls, text: str) -> MasterKey:
        try:
            return cls(base64.b64decode(text, validate=True))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"ATRIUM_MASTER_KEY is not valid base64 of 32 bytes: {exc}") from None

    def wrap(self, data_key: bytes, tenant_id: str) -> str:
        nonce = os.urandom(NONCE)
        sealed = self._aead.encrypt(nonce, data_key, tenant_id.encode())
        return base64.b64encode(nonce + sealed).decode()

    def unwrap(self, wrapped: str, tenant_id: str) -> bytes:
        raw = base64.b64decode(wrapped)
        try:
            return self._aead.decrypt(raw[:NONCE], raw[NONCE:], tenant_id.encode())
        except Exception as exc:
            raise CorruptBlob("the data key does not unwrap with this master key") from exc


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


class BlobEncryptor:
    """Streaming AES-256-GCM: ``header()``, ``update(chunk)`` for each chunk, ``finish()``."""

    def __init__(self, data_key: bytes) -> None:
        self._nonce = os.urandom(NONCE)
        self._encryptor = Cipher(algorithms.AES(data_key), modes.GCM(self._nonce)).encryptor()

    def header(self) -> bytes:
        return MAGIC + self._nonce

    def update(self, chunk: bytes) -> bytes:
        return self._encryptor.update(chunk)

    def finish(self) -> bytes:
        return self._encryptor.finalize() + self._encryptor.tag


def blob_decryptor(data_key: bytes, header: bytes, tag: bytes) -> object:
    if len(header) != HEADER or not header.startswith(MAGIC) or len(tag) != TAG:
        raise CorruptBlob("not an Atrium-encrypted blob")
    return Cipher(algorithms.AES(data_key), modes.GCM(header[len(MAGIC) :], tag)).decryptor()
