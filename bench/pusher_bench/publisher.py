"""Signed HTTP API publishes over raw asyncio HTTP/1.1 keep-alive connections.

A ``Publisher`` holds ``inflight`` connections, each with one request at a time, so at most
``inflight`` publishes are outstanding. A connection answered with ``Connection: close`` (as
soketi answers every request) is replaced by a fresh one. A request's body is built just
before it is written, so the send stamp inside it is taken as late as possible.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections import Counter
from collections.abc import Callable, Sequence
from typing import cast
from urllib.parse import urlsplit

from .wire import BENCH_EVENT, bench_data, signed_query

MAX_HEAD = 65536


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; ``request`` sends one and awaits its answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = b""
        self._answer: asyncio.Future[tuple[int, bytes]] | None = None
        self._lost: BaseException | None = None
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._lost = exc or ConnectionError("closed by server")
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(self._lost)

    async def request(self, data: bytes) -> tuple[int, bytes]:
        """Write a whole request; return the status and body of its response."""
        if self.transport is None:
            raise ConnectionError(f"connection gone: {self._lost}")
        self._answer = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self._answer

    def data_received(self, data: bytes) -> None:
        self._buf += data
        answer = self._parse()
        if answer is not None and self._answer is not None and not self._answer.done():
            self._answer.set_result(answer)

    def _parse(self) -> tuple[int, bytes] | None:
        """A whole response from the buffer (Content-Length or chunked), or None yet."""
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEAD and self.transport is not None:
                self.transport.abort()
            return None
        status_line, *lines = self._buf[:end].decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines)
        }
        status = int(status_line.split(" ", 2)[1])
        self.keep_alive = headers.get("connection", "").lower() != "close"
        rest = self._buf[end + 4 :]
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parsed = _dechunk(rest)
            if parsed is None:
                return None
            body, used = parsed
        else:
            used = int(headers.get("content-length", "0"))
            if len(rest) < used:
                return None
            body = rest[:used]
        self._buf = rest[used:]
        return status, body


def _dechunk(data: bytes) -> tuple[bytes, int] | None:
    """The body of a whole chunked message at the start of ``data`` and its length in
    ``data``, or None while incomplete (trailers are not supported)."""
    pos, parts = 0, list[bytes]()
    while True:
        line_end = data.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(data[pos:line_end].split(b";")[0], 16)
        start = line_end + 2
        if size == 0:
            return (b"".join(parts), start + 2) if len(data) >= start + 2 else None
        if len(data) < start + size + 2:
            return None
        parts.append(data[start : start + size])
        pos = start + size + 2


class Publisher:
    """Signed ``POST /apps/{id}/events`` (or ``batch_events``) on ``inflight`` keep-alive
    connections. Counts answers that are not HTTP 200 or carry an ``error`` (soketi answers
    200 with the error in the body) in ``failures``."""

    def __init__(self, http_url: str, app_id: str, key: str, secret: str, inflight: int) -> None:
        parts = urlsplit(http_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http://host:port URLs are supported: {http_url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.app_id, self.key, self.secret = app_id, key, secret
        self.inflight = inflight
        self.failures: Counter[str] = Counter()
        self.sent = 0
        self._idle: asyncio.Queue[HttpConnection] = asyncio.Queue()

    async def open(self) -> None:
        """Open the connections (raises OSError if the server does not answer)."""
        loop = asyncio.get_running_loop()
        for _ in range(self.inflight):
            _, conn = await loop.create_connection(HttpConnection, self.host, self.port)
            self._idle.put_nowait(conn)

    def close(self) -> None:
        while not self._idle.empty():
            conn = self._idle.get_nowait()
            if conn.transport is not None:
                conn.transport.close()

    async def publish(self, body: Callable[[], bytes], batch: bool = False) -> None:
        """Send one request whose JSON body ``body()`` makes at write time; waits for an
        idle connection first. Failures are counted, not raised."""
        conn = await self._idle.get()
        path = f"{self.prefix}/apps/{self.app_id}/{'batch_events' if batch else 'events'}"
        data = body()
        query = signed_query(self.key, self.secret, "POST", path, data)
        head = (
            f"POST {path}?{query} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        try:
            status, answer = await conn.request(head.encode() + data)
        except (OSError, ConnectionError) as exc:
            self.failures[f"connection: {exc}"] += 1
            await self._replace(conn)
            return
        self.sent += 1
        if status != 200 or b'"error"' in answer:
            self.failures[f"HTTP {status}: {answer[:120].decode(errors='replace')}"] += 1
        if conn.keep_alive:
            self._idle.put_nowait(conn)
        else:  # soketi answers every request with Connection: close
            await self._replace(conn)

    async def _replace(self, conn: HttpConnection) -> None:
        """Put a fresh connection in place of ``conn`` (closed)."""
        if conn.transport is not None:
            conn.transport.close()
        try:
            _, fresh = await asyncio.get_running_loop().create_connection(
                HttpConnection, self.host, self.port
            )
        except OSError as exc:
            self.failures[f"reconnect: {exc}"] += 1
            await asyncio.sleep(0.1)
            fresh = HttpConnection()  # dead: its next request fails and is replaced again
        self._idle.put_nowait(fresh)


def event_body(
    channels: Sequence[str], first: int, batch: int, padding: str
) -> Callable[[], bytes]:
    """A body maker for ``Publisher.publish``: a stamped bench event on
    ``channels[first % len(channels)]`` (``batch`` 1), or a ``batch_events`` body of ``batch``
    events on the channels that follow it round-robin."""
    if batch == 1:
        channel = channels[first % len(channels)]
        return lambda: json.dumps(
            {"name": BENCH_EVENT, "channel": channel, "data": bench_data(padding)}
        ).encode()
    names = [channels[(first + i) % len(channels)] for i in range(batch)]
    return lambda: json.dumps(
        {"batch": [{"name": BENCH_EVENT, "channel": c, "data": bench_data(padding)} for c in names]}
    ).encode()
