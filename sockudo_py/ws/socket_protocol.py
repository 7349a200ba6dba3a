"""``PusherSocket``: the asyncio protocol of one ``/app/{key}`` WebSocket.

uvicorn parses each HTTP request; an upgrade goes to its WebSocket protocol class, which for
this server is a ``SocketProtocolFactory``. ``/app/{key}`` upgrades become a ``PusherSocket``:
the handshake, the frames (``ws.wire``) and the writes are done here, straight on the
transport, with no task or queue per socket; every other path is served by uvicorn's own
WebSocket protocol and the ASGI app (``AsgiWebSocketProtocol``).

Per socket this holds a ``FrameReader``, the ``Connection`` and, only while the socket is
admitted or a frame that may wait on I/O (a subscribe, a sign-in) is handled, one task; frames
that arrive meanwhile wait, in order. Pings and client events are handled at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import NegotiationError, PayloadTooBig
from websockets.exceptions import ProtocolError as DeflateError
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.headers import build_extension, parse_extension

from . import wire
from .compression import deflate_factory
from .connection import Connection, log_connection_error
from .eager import Handling
from .endpoint import SHUTTING_DOWN, PusherEndpoint

log = logging.getLogger("sockudo_py.ws")

CLOSE_TIMEOUT = 3.0
"""Seconds the peer has to answer the server's close frame before the TCP connection goes."""
APP_PATH = "/app/"
APP_REQUEST = b"GET " + APP_PATH.encode()

PROTOCOL_ERRORS = {
    wire.PROTOCOL_ERROR: "protocol error",
    wire.INVALID_DATA: "invalid frame payload data",
    wire.TOO_BIG: "message too big",
}
"""Close codes of the WebSocket layer's own protocol errors (logged)."""


class SocketProtocolFactory:
    """uvicorn's ``ws`` protocol class for this server: called with uvicorn's arguments at
    each upgrade. ``/app/{key}`` gets a ``PusherSocket`` of ``endpoint``; other paths (ASGI
    WebSocket routes) get uvicorn's protocol, with the same ``websocket.compression``."""

    def __init__(self, endpoint: PusherEndpoint, compression: str, max_size: int) -> None:
        self.endpoint = endpoint
        self.deflate = deflate_factory(compression)
        self.asgi_protocol = type(
            "AsgiWebSocketProtocol", (AsgiWebSocketProtocol,), {"deflate": self.deflate}
        )
        self.max_size = max_size

    def __call__(self, **uvicorn_args: Any) -> asyncio.Protocol:
        """uvicorn's ``ws`` protocol: an upgrade its HTTP protocol parsed."""
        return PusherSocket(self, uvicorn_args)

    def entry(self, **uvicorn_args: Any) -> asyncio.Protocol:
        """uvicorn's ``http`` protocol: a new connection (see ``EntryProtocol``)."""
        return EntryProtocol(self, uvicorn_args)


class EntryProtocol(asyncio.Protocol):
    """uvicorn's HTTP protocol class for this server: the first bytes of each connection
    decide. A request for ``/app/...`` becomes a ``PusherSocket`` as soon as its head is in
    (no HTTP parser, no ASGI scope); any other request is handed, with what was read, to
    uvicorn's own HTTP protocol (httptools), which serves the ASGI app."""

    __slots__ = ("_buffer", "_factory", "_transport", "_uvicorn_args")

    def __init__(self, factory: SocketProtocolFactory, uvicorn_args: dict[str, Any]) -> None:
        self._factory = factory
        self._uvicorn_args = uvicorn_args
        self._transport: asyncio.BaseTransport | None = None
        self._buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        if len(buffer) < len(APP_REQUEST) and APP_REQUEST.startswith(buffer):
            self._buffer = buffer  # too short to tell yet
            return
        if buffer.startswith(APP_REQUEST):
            if b"\r\n\r\n" not in buffer and len(buffer) <= wire.MAX_HEAD:
                self._buffer = buffer  # the head is not complete yet
                return
            if len(buffer) <= wire.MAX_HEAD or b"\r\n\r\n" in buffer[: wire.MAX_HEAD]:
                self._switch(PusherSocket(self._factory, self._uvicorn_args), buffer)
                return
        self._switch(HttpToolsProtocol(**self._uvicorn_args), buffer)

    def _switch(self, protocol: asyncio.Protocol, data: bytes) -> None:
        transport = self._transport
        assert transport is not None
        self._buffer = b""
        protocol.connection_made(transport)
        transport.set_protocol(protocol)
        protocol.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._buffer = b""


class AsgiWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol for the ASGI app's own WebSocket routes, negotiating
    permessage-deflate only as ``deflate`` (``websocket.compression``) says: uvicorn's
    ``ws_per_message_deflate`` has fixed parameters."""

    deflate: ClassVar[ServerPerMessageDeflateFactory | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn.available_extensions = [self.deflate] if self.deflate is not None else []


class PusherSocket(asyncio.Protocol):
    """One WebSocket to ``/app/{key}``: handshake, frames in, frames out (``Sink``).

    Frames of the connection are handled one at a time, in order: those that need no I/O
    at once, the others as a task, the next frames waiting behind it. When the TCP
    connection goes, the endpoint forgets the connection once any frame in hand is done
    (cancelled).
    """

    __slots__ = (
        "_close_timer",
        "_endpoint",
        "_greeting",
        "_inbox",
        "_reader",
        "_setup",
        "_task",
        "_transport",
        "conn",
        "gone",
    )

    def __init__(self, factory: SocketProtocolFactory, uvicorn_args: dict[str, Any]) -> None:
        self._endpoint = factory.endpoint
        self._setup: tuple[SocketProtocolFactory, dict[str, Any]] | None = (
            factory,
            uvicorn_args,
        )
        self._transport: asyncio.Transport | None = None
        self._reader: wire.FrameReader | None = None
        self._task: asyncio.Task[None] | None = None
        self._inbox: deque[bytes | str] | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._greeting: bytes | None = None
        self.conn: Connection | None = None
        self.gone = False

    # --- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        if reader is None:
            self._handshake(data)
            return
        try:
            messages = reader.feed(data)
        except wire.WireError as exc:
            self._protocol_error(exc.code, exc.reason)
            return
        for opcode, payload in messages:
            if opcode <= wire.OP_BINARY:
                self._message(payload)
            elif opcode == wire.OP_PING:
                self._mark_active()
                self.write(wire.encode_frame(wire.OP_PONG, bytes(payload)))  # type: ignore[arg-type]
            elif opcode == wire.OP_PONG:
                self._mark_active()
            else:
                self._peer_closed(payload)  # type: ignore[arg-type]
                return
        if self.conn is not None:
            self.conn.flush()  # the answers to what was read (pongs, errors), at once

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone = True
        self._inbox = None
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
        conn = self.conn
        if conn is None:
            return
        if conn.close_code is None:
            conn.close_code = wire.ABNORMAL
        self.conn = None
        asyncio.get_running_loop().create_task(self._endpoint.release(conn, task))

    # --- Sink ----------------------------------------------------------------------------

    def write(self, data: bytes) -> int:
        transport = self._transport
        if self.gone or transport is None or transport.is_closing():
            return 0
        if self._greeting is not None:  # the 101 goes out with the first frame
            data, self._greeting = self._greeting + data, None
        transport.write(data)
        return transport.get_write_buffer_size()

    def buffered(self) -> int:
        transport = self._transport
        return 0 if transport is None else transport.get_write_buffer_size()

    def close_sent(self) -> None:
        transport = self._transport
        if transport is not None and not self.gone and self._close_timer is None:
            self._close_timer = asyncio.get_running_loop().call_later(
                CLOSE_TIMEOUT, transport.close
            )

    def abort(self) -> None:
        if self._transport is not None and not self.gone:
            self._transport.abort()

    def refuse(self, frame: str, code: int, reason: str) -> None:
        """Answer a refused connection: ``frame`` (its ``pusher:error``), then a close with
        ``code``."""
        self.write(wire.text_frame(frame) + wire.close_frame(code, reason))
        self.close_sent()

    # --- the handshake -------------------------------------------------------------------

    def _handshake(self, data: bytes) -> None:
        """``data``: the whole request head, and maybe the first frames after it."""
        setup, self._setup = self._setup, None
        if setup is None:  # data after a refused handshake
            return
        factory, uvicorn_args = setup
        head, _, rest = data.partition(b"\r\n\r\n")
        request = wire.parse_request(head)
        if request is None or not request.path.startswith(APP_PATH):
            # another route: uvicorn gives this protocol the transport after this call
            # returns, so hand it over to uvicorn's own protocol on the next iteration
            asyncio.get_running_loop().call_soon(self._hand_over, factory, uvicorn_args, data)
            return
        problem = wire.handshake_problem(request)
        endpoint = self._endpoint
        if problem is None and not endpoint.accepting:
            endpoint.refused_upgrade()
            problem = 503, SHUTTING_DOWN
        if problem is not None:
            status, reason = problem
            extra = {"Retry-After": "1"} if status == 503 else None
            if status == 426:
                extra = {"Sec-WebSocket-Version": "13"}
            self._end(wire.http_response(status, reason, extra))
            return
        extensions, inflate, encode = None, None, None
        if factory.deflate is not None:
            negotiated = _negotiate(factory.deflate, request.header("sec-websocket-extensions"))
            if negotiated is not None:
                extensions, deflate = negotiated
                inflate, encode = _inflater(deflate, factory.max_size), _deflater(deflate)
        self._reader = wire.FrameReader(factory.max_size, inflate)
        assert self._transport is not None
        # the 101 waits for admission's first frame (connection_established or the
        # refusal): one write, one wake-up of the client, instead of two
        self._greeting = wire.accept(request, extensions)
        key = request.path[len(APP_PATH) :]
        peer = self._transport.get_extra_info("peername")
        client = peer[0] if isinstance(peer, tuple) else None
        self._start(endpoint.open(self, key, request.headers, client, encode))
        if rest:
            self.data_received(rest)

    def _hand_over(
        self, factory: SocketProtocolFactory, uvicorn_args: dict[str, Any], head: bytes
    ) -> None:
        transport = self._transport
        if transport is None or self.gone:
            return
        protocol = factory.asgi_protocol(**uvicorn_args)
        protocol.connection_made(transport)
        transport.set_protocol(protocol)
        protocol.data_received(head)

    def _end(self, response: bytes) -> None:
        assert self._transport is not None
        self._transport.write(response)
        self._transport.close()

    # --- frames in -----------------------------------------------------------------------

    def _message(self, payload: bytes | str) -> None:
        if self._task is not None or self.conn is None:
            if self._inbox is None:
                self._inbox = deque()
            self._inbox.append(payload)
            return
        self._handle(payload)

    def _handle(self, payload: bytes | str) -> None:
        conn = self.conn
        if conn is None or conn.closing:
            return
        if conn.metrics is not None:
            conn.metrics.frame_received(payload)
        work = self._endpoint.handler.handle(conn, payload)
        if work is not None:
            self._start(work)

    def _start(self, work: Handling) -> None:
        """Run ``work`` as the socket's task; the next frames wait until it is done."""
        task = asyncio.get_running_loop().create_task(work)
        self._task = task
        task.add_done_callback(self._handled)

    def _handled(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = None
            self._drain_inbox()

    def _drain_inbox(self) -> None:
        inbox = self._inbox
        while inbox and self._task is None and not self.gone:
            self._handle(inbox.popleft())
        if not inbox:
            self._inbox = None

    def _mark_active(self) -> None:
        if self.conn is not None:
            self.conn.mark_active()

    def _peer_closed(self, payload: bytes) -> None:
        """The peer's close frame: answer it (unless ours went first), then end the TCP
        connection."""
        try:
            code, _ = wire.parse_close(payload)
        except wire.WireError as exc:
            self._protocol_error(exc.code, exc.reason)
            return
        conn = self.conn
        if conn is None or conn.close_code is None:
            if conn is not None:
                conn.close_code = wire.ABNORMAL  # the peer left: nothing more to send
            reply = wire.close_frame(code) if code != wire.NO_STATUS else wire.close_frame(1000)
            self.write(reply)
        self._reader = None  # nothing more is read
        self._setup = None
        assert self._transport is not None
        self._transport.close()

    def _protocol_error(self, code: int, reason: str) -> None:
        conn = self.conn
        if conn is not None:
            log_connection_error(
                log, "socket closed", conn.app.id, conn.socket_id, code, PROTOCOL_ERRORS[code]
            )
            conn.close_code = wire.ABNORMAL
        self._reader = None
        self.write(wire.close_frame(code, reason))
        assert self._transport is not None
        self._transport.close()


# --- permessage-deflate -------------------------------------------------------------------


def _negotiate(
    factory: ServerPerMessageDeflateFactory, offer: str
) -> tuple[str, PerMessageDeflate] | None:
    """The first acceptable permessage-deflate offer in ``offer``: the response header and
    the extension; ``None`` if there is none (the socket goes uncompressed)."""
    if not offer:
        return None
    try:
        offers = parse_extension(offer)
    except Exception:
        return None
    for name, params in offers:
        if name != factory.name:
            continue
        try:
            response, extension = factory.process_request_params(params, [])
        except NegotiationError:
            continue
        return build_extension([(name, response)]), extension
    return None


def _inflater(deflate: PerMessageDeflate, max_size: int) -> wire.Inflate:
    def inflate(opcode: int, fin: bool, rsv1: bool, payload: bytes) -> bytes:
        try:
            frame = deflate.decode(Frame(Opcode(opcode), payload, fin, rsv1), max_size=max_size)
        except PayloadTooBig:
            raise wire.WireError(wire.TOO_BIG, f"message over {max_size} bytes") from None
        except DeflateError as exc:
            raise wire.WireError(wire.PROTOCOL_ERROR, str(exc)) from None
        return bytes(frame.data)

    return inflate


def _deflater(deflate: PerMessageDeflate) -> Callable[[str], bytes]:
    def encode(text: str) -> bytes:
        frame = deflate.encode(Frame(Opcode.TEXT, text.encode()))
        return wire.encode_frame(wire.OP_TEXT, bytes(frame.data), rsv1=frame.rsv1)

    return encode
