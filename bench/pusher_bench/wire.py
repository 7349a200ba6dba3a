"""What goes on the wire: Pusher signatures, client WebSocket frames, bench payloads.

Self-contained (no import of the server under test), so the tool measures any server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time

MARK = b"BENCH:"
"""Every bench event's ``data`` string starts with this, then a 19-digit ``time.time_ns()``
taken just before the event left the client; receivers find it without decoding JSON."""
STAMP_DIGITS = 19
BENCH_EVENT = "bench"
CLIENT_EVENT = "client-bench"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def hmac_hex(secret: str, message: str) -> str:
    """Hex HMAC-SHA256 of ``message`` under ``secret``."""
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed_query(
    key: str, secret: str, method: str, path: str, body: bytes = b"", **extra: str
) -> str:
    """The query string of a signed HTTP API request (``body_md5`` only with a body): the
    params ``auth_*`` plus ``extra``, signed over ``METHOD\\nPATH\\n`` + sorted ``k=v&...``."""
    params = {"auth_key": key, "auth_timestamp": str(int(time.time())), "auth_version": "1.0"}
    params.update(extra)
    if body:
        params["body_md5"] = hashlib.md5(body).hexdigest()
    query = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    signature = hmac_hex(secret, f"{method}\n{path}\n{query}")
    return f"{query}&auth_signature={signature}"


def channel_auth(key: str, secret: str, socket_id: str, channel: str, data: str | None) -> str:
    """The ``auth`` of a private (``data`` None) or presence subscription."""
    subject = f"{socket_id}:{channel}" if data is None else f"{socket_id}:{channel}:{data}"
    return f"{key}:{hmac_hex(secret, subject)}"


def subscribe_frame(
    key: str, secret: str, socket_id: str, channel: str, user_id: str | None
) -> bytes:
    """The ``pusher:subscribe`` text for ``channel``: signed when private, with
    ``channel_data`` for ``user_id`` when presence."""
    data: dict[str, str] = {"channel": channel}
    if channel.startswith("presence-"):
        channel_data = json.dumps({"user_id": user_id, "user_info": {}})
        data["channel_data"] = channel_data
        data["auth"] = channel_auth(key, secret, socket_id, channel, channel_data)
    elif channel.startswith("private-"):
        data["auth"] = channel_auth(key, secret, socket_id, channel, None)
    return json.dumps({"event": "pusher:subscribe", "data": data}).encode()


def bench_data(padding: str = "") -> str:
    """A bench event's ``data`` string, stamped now."""
    return f"{MARK.decode()}{time.time_ns():0{STAMP_DIGITS}d}:{padding}"


def client_event_frame(channel: str, padding: str = "") -> bytes:
    """A masked WebSocket frame carrying a stamped client event on ``channel``."""
    text = json.dumps({"event": CLIENT_EVENT, "channel": channel, "data": bench_data(padding)})
    return text_frame(text.encode())


def text_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A final client frame with a zero masking key (legal, and masking is then a no-op)."""
    size = len(payload)
    if size < 126:
        header = bytes((0x80 | opcode, 0x80 | size))
    elif size < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
    return header + b"\x00\x00\x00\x00" + payload


PONG = text_frame(b'{"event":"pusher:pong","data":{}}')
CLOSE = text_frame((1000).to_bytes(2, "big"), opcode=0x8)


def handshake(host: str, path: str, deflate: bool) -> tuple[bytes, str]:
    """The upgrade request for ``path`` and the ``Sec-WebSocket-Accept`` it must get back."""
    key = base64.b64encode(os.urandom(16))
    accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
    extensions = (
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        if deflate
        else ""
    )
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n{extensions}\r\n"
    )
    return request.encode(), accept
