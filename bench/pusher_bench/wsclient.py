"""A minimal Pusher WebSocket client on a raw asyncio Protocol, fast enough for load.

Receiving costs a frame-header parse and one ``bytes.find`` per frame: bench events (whose
``data`` starts with ``wire.MARK``) are counted, and their send stamp read for latency,
without decoding JSON. Only the rare other frames (connection established, subscription
succeeded, pings, errors) are decoded. Client frames use a zero masking key.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import zlib
from array import array
from collections import Counter
from typing import Protocol, cast
from urllib.parse import urlsplit

from .wire import CLOSE, MARK, PONG, STAMP_DIGITS, handshake, subscribe_frame, text_frame

STAMP_START = len(MARK)
STAMP_END = STAMP_START + STAMP_DIGITS
MAX_HANDSHAKE = 16384


class Room(Protocol):
    """Told of every bench delivery to one of its members (presence closed loop)."""

    def delivered(self) -> None: ...


class Sink:
    """The counters that every connection of one client process adds to (one event loop,
    so no locking): bench deliveries, the latencies in ns of those that recording
    connections got, the wall clock of the last one, connection errors and close codes."""

    def __init__(self) -> None:
        self.deliveries = 0
        self.last_ns = 0
        self.latencies = array("q")
        self.errors: Counter[str] = Counter()
        self.closes: Counter[int] = Counter()

    def reset(self) -> None:
        """Start a new measurement phase (errors and closes are kept)."""
        self.deliveries = 0
        self.last_ns = 0
        self.latencies = array("q")


class Endpoint:
    """Where and as whom connections go: a ``ws://host:port`` URL, app key and secret."""

    def __init__(self, ws_url: str, key: str, secret: str, deflate: bool = False) -> None:
        parts = urlsplit(ws_url)
        if parts.scheme != "ws" or not parts.hostname:
            raise ValueError(f"only ws://host:port URLs are supported: {ws_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.path = f"{parts.path.rstrip('/')}/app/{key}?protocol=7&client=pusher-bench"
        self.key = key
        self.secret = secret
        self.deflate = deflate
        # one Sec-WebSocket-Key for all of its connections: servers only echo it hashed
        self.request, accept = handshake(self.host, self.path, deflate)
        self.accept = f"\r\nsec-websocket-accept: {accept}\r\n".lower().encode()


class PusherSocket(asyncio.Protocol):
    """One Pusher connection subscribed to ``channels`` (as ``user_id`` on presence ones).

    ``ready`` resolves once every subscription succeeded, and fails on a subscription
    error or a close before that. ``received`` counts the bench events it got; with
    ``record`` their latencies go to the sink.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        sink: Sink,
        channels: tuple[str, ...],
        user_id: str | None = None,
        record: bool = True,
    ) -> None:
        self.endpoint = endpoint
        self.record = record
        self.sink = sink
        self.channels = channels
        self.user_id = user_id
        self.room: Room | None = None
        self.received = 0
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self._pending = len(channels)
        self._handshaking = True
        self._buf = b""
        self._inflater: zlib._Decompress | None = None
        self._fragments: list[bytes] | None = None
        self._fragments_deflated = False
        self._failed = False
        self._mark = 0

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport.write(self.endpoint.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(f"connection lost: {exc or 'EOF'}")

    def data_received(self, data: bytes) -> None:
        # the hot path: one whole, final, uncompressed text frame of a bench event
        if data[0] == 0x81 and not self._buf:
            length = data[1]
            start = 2
            if length == 126:
                length = (data[2] << 8) | data[3]
                start = 4
            if start + length == len(data):
                mark = self._mark  # where the last one had it: frames of a run look alike
                if not data.startswith(MARK, mark):
                    mark = self._mark = data.find(MARK, start)
                if mark >= 0:  # _bench, inlined
                    now = time.time_ns()
                    self.received += 1
                    sink = self.sink
                    sink.deliveries += 1
                    sink.last_ns = now
                    if self.record:
                        sink.latencies.append(
                            now - int(data[mark + STAMP_START : mark + STAMP_END])
                        )
                    if self.room is not None:
                        self.room.delivered()
                    return
        if self._handshaking:
            data = self._handshake(data)
            if not data:
                return
        buf = self._buf + data if self._buf else data
        self._buf = buf[self._frames(buf) :]

    # -- sending ------------------------------------------------------------------------

    @property
    def deflated(self) -> bool:
        """permessage-deflate was negotiated."""
        return self._inflater is not None

    def send(self, frame: bytes) -> None:
        """Write an already framed message (see ``wire.text_frame``), if still open."""
        if self.transport is not None:
            self.transport.write(frame)

    def close(self) -> None:
        """Send a close frame and drop the TCP connection (not counted as a failure)."""
        self._failed = True
        if self.transport is not None:
            self.transport.write(CLOSE)
            self.transport.close()

    # -- receiving ----------------------------------------------------------------------

    def _handshake(self, data: bytes) -> bytes:
        """Consume the upgrade response; return the bytes after it (frames)."""
        self._buf += data
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HANDSHAKE:
                self._abort("handshake response too long")
            return b""
        head, rest = self._buf[: end + 2].lower(), self._buf[end + 4 :]
        self._buf = b""
        if not head.startswith(b"http/1.1 101 "):
            status = head.partition(b"\r\n")[0].decode(errors="replace")
            self._abort(f"handshake: {status}")
            return b""
        if self.endpoint.accept not in head:
            self._abort("handshake: bad Sec-WebSocket-Accept")
            return b""
        if self.endpoint.deflate and b"permessage-deflate" in head:
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self._handshaking = False
        return rest

    def _frames(self, buf: bytes) -> int:
        """Handle every whole frame in ``buf``; return how many bytes they took."""
        pos, size, now = 0, len(buf), 0
        sink = self.sink
        while size - pos >= 2:
            length = buf[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > size:
                break
            first = buf[pos]
            if first == 0x81:  # final, uncompressed text: the hot path
                mark = buf.find(MARK, start, end)
                if mark >= 0:
                    now = now or time.time_ns()
                    self._bench(buf, mark, now)
                else:
                    self._control(buf[start:end])
            else:
                if not now and first & 0x0F in (0x0, 0x1):
                    now = time.time_ns()
                self._other(first, buf[start:end], now)
            pos = end
        if now:
            sink.last_ns = now
        return pos

    def _bench(self, buf: bytes, mark: int, now: int) -> None:
        self.received += 1
        sink = self.sink
        sink.deliveries += 1
        if self.record:
            sink.latencies.append(now - int(buf[mark + STAMP_START : mark + STAMP_END]))
        if self.room is not None:
            self.room.delivered()

    def _other(self, first: int, payload: bytes, now: int) -> None:
        """Every frame but a final uncompressed text one: fragments, deflate, control."""
        opcode = first & 0x0F
        if opcode == 0x8:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.sink.closes[code] += 1
            self._fail(f"closed by server: {code} {payload[2:].decode(errors='replace')}")
            self.close()
        elif opcode == 0x9:
            self.send(text_frame(payload, opcode=0xA))
        elif opcode in (0x0, 0x1):
            if opcode == 0x1:
                self._fragments, self._fragments_deflated = [], bool(first & 0x40)
            if self._fragments is None:
                self._abort("continuation frame without a start")
                return
            self._fragments.append(payload)
            if first & 0x80:
                message, self._fragments = b"".join(self._fragments), None
                self._message(message, self._fragments_deflated, now)

    def _message(self, payload: bytes, deflated: bool, now: int) -> None:
        """A whole text message that did not take the hot path."""
        if deflated:
            if self._inflater is None:
                self._abort("compressed frame without permessage-deflate")
                return
            payload = self._inflater.decompress(payload + b"\x00\x00\xff\xff")
        mark = payload.find(MARK)
        if mark >= 0:
            self._bench(payload, mark, now)
        else:
            self._control(payload)

    def _control(self, payload: bytes) -> None:
        """A Pusher protocol frame other than a bench event."""
        if b'"pusher_internal:subscription_succeeded"' in payload:
            self._pending -= 1
            if self._pending == 0 and not self.ready.done():
                self.ready.set_result(None)
            return
        try:
            message = json.loads(payload)
            event = message.get("event")
        except (ValueError, AttributeError):
            self.sink.errors["undecodable frame"] += 1
            return
        if event == "pusher:connection_established":
            socket_id = json.loads(message["data"])["socket_id"]
            endpoint = self.endpoint
            for channel in self.channels:
                self.send(
                    text_frame(
                        subscribe_frame(
                            endpoint.key, endpoint.secret, socket_id, channel, self.user_id
                        )
                    )
                )
            if not self.channels and not self.ready.done():
                self.ready.set_result(None)
        elif event == "pusher:ping":
            self.send(PONG)
        elif event in ("pusher:error", "pusher:subscription_error"):
            self._fail(f"{event}: {str(message.get('data'))[:120]}")

    def _fail(self, why: str) -> None:
        """Count the first failure of this connection in ``sink.errors`` (unless it is being
        closed by us) and fail ``ready`` if still pending."""
        if self._failed:
            return
        self._failed = True
        self.sink.errors[why] += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
            self.ready.exception()  # retrieved: a failed connection is counted, not raised

    def _abort(self, why: str) -> None:
        self._fail(why)
        if self.transport is not None:
            self.transport.abort()
