"""HMAC-SHA256 signatures: channel auth, user sign-in, the HTTP API and webhooks."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from .errors import ErrorCode, ProtocolError

AUTH_TIMESTAMP_WINDOW = 600


def hmac_hex(secret: str, message: str | bytes) -> str:
    # surrogatepass: a lone surrogate from a peer must fail to match, not raise
    raw = message.encode("utf-8", "surrogatepass") if isinstance(message, str) else message
    return hmac.new(secret.encode("utf-8", "surrogatepass"), raw, hashlib.sha256).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(
        a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    )


def channel_string_to_sign(socket_id: str, channel: str, channel_data: str | None = None) -> str:
    if channel_data is None:
        return f"{socket_id}:{channel}"
    return f"{socket_id}:{channel}:{channel_data}"


def sign_channel(
    key: str, secret: str, socket_id: str, channel: str, channel_data: str | None = None
) -> str:
    """The ``auth`` value a client sends to subscribe: ``<key>:<hex signature>``."""
    return f"{key}:{hmac_hex(secret, channel_string_to_sign(socket_id, channel, channel_data))}"


def verify_channel_auth(
    auth: str | None,
    key: str,
    secret: str,
    socket_id: str,
    channel: str,
    channel_data: str | None = None,
) -> bool:
    if not auth:
        return False
    return constant_time_equal(auth, sign_channel(key, secret, socket_id, channel, channel_data))


def sign_user(key: str, secret: str, socket_id: str, user_data: str) -> str:
    """The ``auth`` value of a ``pusher:signin``."""
    return f"{key}:{hmac_hex(secret, f'{socket_id}::user::{user_data}')}"


def verify_user_auth(auth: str, key: str, secret: str, socket_id: str, user_data: str) -> bool:
    return constant_time_equal(auth, sign_user(key, secret, socket_id, user_data))


def api_string_to_sign(method: str, path: str, params: Mapping[str, str]) -> str:
    """``METHOD\\nPATH\\nk=v&...`` over every param but ``auth_signature``, keys lower-cased."""
    pairs = sorted((k.lower(), v) for k, v in params.items() if k.lower() != "auth_signature")
    query = "&".join(f"{k}={v}" for k, v in pairs)
    return f"{method.upper()}\n{path}\n{query}"


def sign_api_request(secret: str, method: str, path: str, params: Mapping[str, str]) -> str:
    return hmac_hex(secret, api_string_to_sign(method, path, params))


def verify_api_request(
    secret: str,
    method: str,
    path: str,
    params: Mapping[str, str],
    body: bytes,
    now: float,
    window: int = AUTH_TIMESTAMP_WINDOW,
) -> None:
    """Check a signed HTTP API request; raise ``ProtocolError`` (4009) saying what is wrong.

    The caller has already matched ``auth_key`` to the app that owns ``secret``.
    """

    def fail(reason: str) -> ProtocolError:
        return ProtocolError(ErrorCode.UNAUTHORIZED, reason)

    timestamp = params.get("auth_timestamp")
    if timestamp is None:
        raise fail("auth_timestamp is required")
    try:
        ts = int(timestamp)
    except ValueError:
        raise fail("auth_timestamp must be an integer") from None
    if not now - window <= ts <= now + window:  # no float(ts): a huge int would overflow
        raise fail(f"auth_timestamp is more than {window} s away from the server's time")
    body_md5 = params.get("body_md5")
    if body:
        if body_md5 is None:
            raise fail("body_md5 is required for a request with a body")
        if not constant_time_equal(body_md5, hashlib.md5(body).hexdigest()):
            raise fail("body_md5 does not match the body")
    elif body_md5 is not None and body_md5 != hashlib.md5(b"").hexdigest():
        raise fail("body_md5 does not match the (empty) body")
    signature = params.get("auth_signature")
    if not signature:
        raise fail("auth_signature is required")
    if not constant_time_equal(signature, sign_api_request(secret, method, path, params)):
        raise fail("Invalid signature: the secret or the string to sign is wrong")


def sign_webhook(secret: str, body: bytes) -> str:
    """``X-Pusher-Signature`` of a webhook body."""
    return hmac_hex(secret, body)
