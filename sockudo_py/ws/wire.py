"""The WebSocket wire format (RFC 6455), server side, without I/O.

``parse_request`` reads an opening handshake and ``accept`` answers it; ``FrameReader`` turns
the bytes a client sends into whole messages (unmasked, defragmented, checked, inflated when
permessage-deflate was negotiated); ``text_frame`` and ``close_frame`` encode what the server
sends. Nothing here touches a socket: ``ws.socket_protocol`` moves the bytes.

Server frames are never masked, so one encoded frame is the same bytes for every socket that
did not negotiate compression: ``text_frame`` keeps the last frame it encoded, and a fan-out,
which hands the same ``str`` to every socket, encodes it once.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets without its C extension
    from websockets.utils import apply_mask

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
DATA_OPCODES = frozenset({OP_CONT, OP_TEXT, OP_BINARY})
CONTROL_OPCODES = frozenset({OP_CLOSE, OP_PING, OP_PONG})

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEAD = 16 * 1024
"""The longest opening handshake (request line and headers) accepted, in bytes."""

# close codes (RFC 6455 section 7.4.1)
NORMAL, GOING_AWAY, PROTOCOL_ERROR, UNSUPPORTED_DATA = 1000, 1001, 1002, 1003
NO_STATUS, ABNORMAL, INVALID_DATA, TOO_BIG = 1005, 1006, 1007, 1009

_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")


class WireError(Exception):
    """The client broke the protocol: the connection is closed with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


# --- the opening handshake ---------------------------------------------------------------


@dataclass(slots=True)
class Request:
    """An opening handshake: ``path`` without its query, ``query`` raw, header names lower
    case (a repeated header's values joined with ``", "``)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]

    def header(self, name: str) -> str:
        return self.headers.get(name, "")


def parse_request(head: bytes) -> Request | None:
    """The request in ``head`` (up to, without, the blank line); ``None`` if malformed."""
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
    except ValueError:
        return None
    if not version.startswith("HTTP/1."):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            return None
        name, value = name.lower(), value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    path, _, query = target.partition("?")
    return Request(method, unquote(path), query, headers)


def _tokens(value: str) -> set[str]:
    return {token.strip().lower() for token in value.split(",")}


def handshake_problem(request: Request) -> tuple[int, str] | None:
    """Why ``request`` is not a WebSocket opening handshake: an HTTP status and reason."""
    if request.method != "GET":
        return 405, "WebSocket upgrades use GET"
    if "websocket" not in _tokens(request.header("upgrade")):
        return 426, "Upgrade: websocket expected"
    if "upgrade" not in _tokens(request.header("connection")):
        return 400, "Connection: Upgrade expected"
    if request.header("sec-websocket-version") != "13":
        return 426, "Sec-WebSocket-Version 13 expected"
    try:
        key = base64.b64decode(request.header("sec-websocket-key"), validate=True)
    except ValueError:
        key = b""
    if len(key) != 16:
        return 400, "Sec-WebSocket-Key is not a base64 16-byte value"
    return None


def accept(request: Request, extensions: str | None = None) -> bytes:
    """The ``101 Switching Protocols`` answer to a valid ``request``."""
    digest = hashlib.sha1(request.header("sec-websocket-key").encode() + GUID).digest()
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {base64.b64encode(digest).decode()}",
    ]
    if extensions:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def http_response(status: int, reason: str, headers: dict[str, str] | None = None) -> bytes:
    """A complete plain-text HTTP response that ends the connection (a refused upgrade)."""
    body = reason.encode()
    lines = [f"HTTP/1.1 {status} {_STATUS_TEXT.get(status, 'Error')}"]
    fields = {"Content-Type": "text/plain; charset=utf-8", "Content-Length": str(len(body))}
    fields.update(headers or {})
    fields["Connection"] = "close"
    lines += [f"{name}: {value}" for name, value in fields.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


_STATUS_TEXT = {
    400: "Bad Request", 403: "Forbidden", 405: "Method Not Allowed", 426: "Upgrade Required",
    431: "Request Header Fields Too Large", 503: "Service Unavailable",
}  # fmt: skip


# --- frames out ----------------------------------------------------------------------------


def encode_frame(opcode: int, payload: bytes, rsv1: bool = False) -> bytes:
    """One final, unmasked frame."""
    first = 0x80 | (0x40 if rsv1 else 0) | opcode
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 65536:
        return bytes((first, 126)) + _U16.pack(size) + payload
    return bytes((first, 127)) + _U64.pack(size) + payload


_last_text: str | None = None
_last_frame = b""


def text_frame(text: str) -> bytes:
    """``text`` as one text frame. The last frame encoded is kept: asked again for the very
    same ``str`` object (a fan-out's every socket), it is not encoded again."""
    global _last_text, _last_frame
    if text is not _last_text:
        _last_frame = encode_frame(OP_TEXT, text.encode())
        _last_text = text
    return _last_frame


def close_frame(code: int, reason: str = "") -> bytes:
    """A close frame with ``code`` and ``reason`` (cut, at a character, to fit a control
    frame's 125 bytes)."""
    payload = _U16.pack(code) + reason.encode()[:123].decode(errors="ignore").encode()
    return encode_frame(OP_CLOSE, payload)


def parse_close(payload: bytes) -> tuple[int, str]:
    """A close frame's code and reason (``NO_STATUS`` when it has none)."""
    if not payload:
        return NO_STATUS, ""
    if len(payload) == 1:
        raise WireError(PROTOCOL_ERROR, "close frame with a 1-byte payload")
    (code,) = _U16.unpack_from(payload)
    if not (1000 <= code < 5000) or code in (1004, NO_STATUS, ABNORMAL, 1015):
        raise WireError(PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise WireError(INVALID_DATA, "close reason is not UTF-8") from None
    return code, reason


# --- frames in -----------------------------------------------------------------------------

Inflate = Callable[[int, bool, bool, bytes], bytes]
"""A permessage-deflate decoder: (opcode, fin, rsv1, payload) -> the payload as sent."""


class FrameReader:
    """Bytes from a client in, whole messages out.

    ``feed`` returns ``(opcode, payload)`` for each complete message (``OP_TEXT`` with the
    payload decoded to ``str``, or ``OP_BINARY``, fragments joined) and each control frame,
    in order. It raises ``WireError`` on anything RFC 6455 forbids:
    an unmasked frame, reserved bits or opcodes, a fragmented or oversized control frame,
    a continuation out of place, or a message over ``max_size`` bytes (1009).
    """

    __slots__ = ("_fragments", "_inflate", "_needed", "_opcode", "_partial", "_size", "max_size")

    def __init__(self, max_size: int, inflate: Inflate | None = None) -> None:
        self.max_size = max_size
        self._inflate = inflate
        self._partial: bytearray | None = None  # the start of a frame not complete yet
        self._needed = 0  # bytes the partial frame needs before it is worth parsing again
        self._fragments: list[bytes] | None = None  # a fragmented message being read
        self._opcode = OP_TEXT
        self._size = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes | str]]:
        partial = self._partial
        if partial is not None:
            # a frame arriving in pieces is gathered first (amortized, however small the
            # pieces) and parsed once it is whole
            partial += data
            if len(partial) < self._needed:
                return []
            data, self._partial = bytes(partial), None
        buffer = data
        messages: list[tuple[int, bytes | str]] = []
        end = len(buffer)
        pos = needed = 0
        while end - pos >= 2:
            first, second = buffer[pos], buffer[pos + 1]
            size = second & 0x7F
            head = pos + 2
            if size == 126:
                if end - head < 2:
                    break
                (size,) = _U16.unpack_from(buffer, head)
                head += 2
            elif size == 127:
                if end - head < 8:
                    break
                (size,) = _U64.unpack_from(buffer, head)
                head += 8
            if not second & 0x80:
                raise WireError(PROTOCOL_ERROR, "client frames must be masked")
            if size > self.max_size:
                raise WireError(TOO_BIG, f"frame over {self.max_size} bytes")
            stop = head + 4 + size
            if stop > end:
                needed = stop - pos
                break
            payload = apply_mask(buffer[head + 4 : stop], buffer[head : head + 4])
            pos = stop
            message = self._frame(first, payload)
            if message is not None:
                messages.append(message)
        if pos < end:
            # the frame's length, or (its header incomplete) any byte more
            self._needed = needed or end - pos + 1
            self._partial = bytearray(memoryview(buffer)[pos:])
        return messages

    def _frame(self, first: int, payload: bytes) -> tuple[int, bytes | str] | None:
        fin, rsv1, opcode = first & 0x80, first & 0x40, first & 0x0F
        if first & 0x30 or (rsv1 and self._inflate is None):
            raise WireError(PROTOCOL_ERROR, "reserved bits set")
        if opcode in CONTROL_OPCODES:
            if not fin or len(payload) > 125:
                raise WireError(PROTOCOL_ERROR, "control frames are final and short")
            if rsv1:
                raise WireError(PROTOCOL_ERROR, "compressed control frame")
            return opcode, payload
        if opcode not in DATA_OPCODES:
            raise WireError(PROTOCOL_ERROR, f"reserved opcode {opcode}")
        if (opcode == OP_CONT) != (self._fragments is not None):
            raise WireError(PROTOCOL_ERROR, "unexpected continuation frame state")
        if rsv1 and opcode == OP_CONT:  # RFC 7692: only a message's first frame says so
            raise WireError(PROTOCOL_ERROR, "compressed bit on a continuation frame")
        if self._inflate is not None:
            payload = self._inflate(opcode, bool(fin), bool(rsv1), payload)
        if opcode != OP_CONT:
            if fin:
                return self._message(opcode, payload)
            self._opcode, self._fragments, self._size = opcode, [payload], len(payload)
            return None
        assert self._fragments is not None
        self._size += len(payload)
        if self._size > self.max_size:
            raise WireError(TOO_BIG, f"message over {self.max_size} bytes")
        self._fragments.append(payload)
        if not fin:
            return None
        whole = b"".join(self._fragments)
        self._fragments = None
        return self._message(self._opcode, whole)

    @staticmethod
    def _message(opcode: int, payload: bytes) -> tuple[int, bytes | str]:
        if opcode != OP_TEXT:
            return opcode, payload
        try:
            return opcode, payload.decode()
        except UnicodeDecodeError:
            raise WireError(INVALID_DATA, "text message is not UTF-8") from None
