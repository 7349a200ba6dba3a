"""private-encrypted channels: NaCl secretbox as Pusher specifies (PyNaCl, imported lazily).

The auth response carries ``shared_secret`` (base64 of 32 bytes); each event's ``data`` is
JSON text ``{"nonce": <base64 24 bytes>, "ciphertext": <base64>}``; the plaintext is the
event's data as JSON text (or plain text).
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from .errors import PusherClientError


class DecryptionError(PusherClientError):
    """An event of a private-encrypted channel could not be decrypted."""


def _secretbox(key: bytes) -> Any:
    try:
        import nacl.secret
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise PusherClientError(
            "private-encrypted channels need PyNaCl: pip install 'sockudo-py[client]'"
        ) from exc
    return nacl.secret.SecretBox(key)


def shared_secret_key(shared_secret: str) -> bytes:
    """The 32-byte key from the auth response's base64 ``shared_secret``."""
    try:
        key = base64.b64decode(shared_secret, validate=True)
    except ValueError as exc:
        raise DecryptionError("shared_secret is not base64") from exc
    if len(key) != 32:
        raise DecryptionError(f"shared_secret must be 32 bytes, got {len(key)}")
    return key


def decrypt(key: bytes, data: Any) -> str:
    """The plaintext (text) of an encrypted event's ``data``."""
    box = _secretbox(key)
    import nacl.exceptions

    try:
        body = orjson.loads(data) if isinstance(data, str | bytes) else data
        nonce = base64.b64decode(body["nonce"])
        ciphertext = base64.b64decode(body["ciphertext"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DecryptionError("encrypted data must be {'nonce', 'ciphertext'} base64") from exc
    try:
        plain: bytes = box.decrypt(ciphertext, nonce)
    except (nacl.exceptions.CryptoError, ValueError) as exc:
        raise DecryptionError("could not decrypt: wrong shared secret or bad data") from exc
    return plain.decode("utf-8")


def ensure_available() -> None:
    """Raise :class:`PusherClientError` naming the extra when PyNaCl is missing."""
    _secretbox(bytes(32))
