"""``Connection``: one WebSocket's state and its outbound buffer.

Sending is synchronous and cheap: ``send`` (a reply to this socket, counted in its app's
metrics) and ``push`` (a broadcast's frame: the broadcast is counted once for every socket)
append the frame to a deque and wake the connection's single writer task, which drains the
deque into the socket. A socket whose buffer passes its limit is a slow consumer and is
closed (4100).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..config import App
from ..metrics import AppMetrics
from ..protocol import frames
from ..protocol.errors import ErrorCode
from ..protocol.frames import PresenceMember

log = logging.getLogger("sockudo_py.ws")

AsgiSend = Callable[[MutableMapping[str, Any]], Awaitable[None]]

QUIET_CODES = frozenset({ErrorCode.RECONNECT})
"""Close codes logged at DEBUG only: 4200 is every socket's goodbye when the node stops."""


def log_connection_error(
    logger: logging.Logger,
    what: str,
    app_id: str | None,
    socket_id: str,
    code: int,
    reason: str,
    *,
    quiet: bool = False,
) -> None:
    """The one log line of a connection error (a refused upgrade, a close the server starts,
    a protocol error) with the app, the socket and the code as structured fields: INFO, or
    DEBUG when ``quiet`` or for the ``QUIET_CODES`` (what every socket gets at a drain). INFO
    lines are bounded per process (100 per 10 s, the rest counted in one warning)."""
    level = logging.DEBUG if quiet or code in QUIET_CODES else logging.INFO
    if logger.isEnabledFor(level) and (level < logging.INFO or _INFO_BUDGET.allows(logger)):
        logger.log(
            level,
            "%s: %d %s",
            what,
            code,
            reason,
            extra={"app_id": app_id, "socket_id": socket_id, "code": int(code)},
        )


class LineBudget:
    """At most ``lines`` log lines per ``window`` seconds; past that they are dropped and, when
    the next window opens, one line says how many (so a client hammering the server with bad
    keys cannot flood the log)."""

    def __init__(self, lines: int, window: float) -> None:
        self.lines, self.window = lines, window
        self._started = -math.inf
        self._used = self._dropped = 0

    def allows(self, logger: logging.Logger) -> bool:
        now = time.monotonic()
        if now - self._started >= self.window:
            if self._dropped:
                logger.warning(
                    "%d connection error line(s) not logged in the last %gs (over %d per %gs)",
                    self._dropped, now - self._started, self.lines, self.window,
                )  # fmt: skip
            self._started, self._used, self._dropped = now, 0, 0
        if self._used < self.lines:
            self._used += 1
            return True
        self._dropped += 1
        return False


_INFO_BUDGET = LineBudget(lines=100, window=10.0)


class Connection:
    """A connected socket of ``app``.

    ``channels`` maps each subscribed channel to its presence member (or ``None``).
    The buffer limit ``max_bytes`` is counted in characters of the queued frames (bytes for
    the ASCII JSON the server writes).
    After ``close`` nothing more is queued; the writer flushes what was queued, then sends
    the close frame. ``abort`` drops the queue first (slow consumers).
    """

    __slots__ = (
        "_asgi_send",
        "_events_count",
        "_events_window",
        "_queue",
        "_queued_bytes",
        "_wake",
        "_writer",
        "app",
        "authenticated",
        "channels",
        "close_code",
        "close_reason",
        "connected_at",
        "drop_when_full",
        "last_activity",
        "max_bytes",
        "max_messages",
        "metrics",
        "on_abort",
        "on_kill",
        "ping_sent_at",
        "socket_id",
        "user_data",
        "user_id",
        "watchlist",
    )

    def __init__(
        self,
        socket_id: str,
        app: App,
        asgi_send: AsgiSend,
        max_messages: int,
        max_bytes: int | None,
        drop_when_full: bool = False,
        metrics: AppMetrics | None = None,
    ) -> None:
        self.socket_id = socket_id
        self.app = app
        self.metrics = metrics
        self.user_id: str | None = None
        self.user_data: str | None = None
        self.watchlist: list[str] = []
        self.authenticated = False
        self.channels: dict[str, PresenceMember | None] = {}
        self.connected_at = self.last_activity = time.monotonic()
        self.ping_sent_at: float | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.drop_when_full = drop_when_full
        self._asgi_send = asgi_send
        self._queue: deque[str] = deque()
        self._queued_bytes = 0
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._events_window = 0.0
        self._events_count = 0
        self.on_abort: Callable[[], None] | None = None
        self.on_kill: Callable[[], None] | None = None

    @property
    def closing(self) -> bool:
        return self.close_code is not None

    def start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    def send(self, frame: str) -> None:
        """Queue a frame for this socket alone, counted in the app's metrics."""
        if self.push(frame) and self.metrics is not None:
            self.metrics.frame_sent(frame)

    def push(self, frame: str) -> bool:
        """Queue a frame of a broadcast (counted by the broadcast); False if it was not
        queued."""
        if self.close_code is not None:
            return False
        queue = self._queue
        if len(queue) >= self.max_messages or (
            self.max_bytes is not None and self._queued_bytes + len(frame) > self.max_bytes
        ):
            if self.drop_when_full:
                return False
            if self.metrics is not None:
                self.metrics.slow_consumer()
            self.abort(ErrorCode.OVER_CAPACITY, "Slow consumer: send buffer full")
            return False
        queue.append(frame)
        self._queued_bytes += len(frame)
        self._wake.set()
        return True

    def close(self, code: int, reason: str) -> None:
        """Close with ``code`` once what is queued is sent (the server closes: logged)."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            self._wake.set()
            log_connection_error(log, "closing socket", self.app.id, self.socket_id, code, reason)

    def abort(self, code: int, reason: str) -> None:
        """Close at once, dropping whatever is still queued, and let the endpoint forget the
        socket without waiting for a peer that may not be reading."""
        if self.close_code is not None:
            return
        self._queue.clear()
        self._queued_bytes = 0
        self.close(code, reason)
        if self.on_abort is not None:
            self.on_abort()

    def mark_active(self) -> None:
        """The peer sent something: restart the activity timer, forget an unanswered ping."""
        self.last_activity = time.monotonic()
        self.ping_sent_at = None

    def allow_client_event(self) -> bool:
        """Count a client event against ``max_client_events_per_second`` per
        ``decay_seconds`` (a fixed window); False when over the limit."""
        limit = self.app.max_client_events_per_second
        if limit <= 0:
            return True
        now = time.monotonic()
        if now - self._events_window >= self.app.decay_seconds:
            self._events_window, self._events_count = now, 0
        self._events_count += 1
        allowed = self._events_count <= limit
        if self.metrics is not None:
            self.metrics.rate_limit("max_client_events_per_second", "websocket", allowed)
        return allowed

    def error(self, code: int, message: str) -> None:
        self.send(frames.error(code, message))

    def fail(self, code: int, message: str) -> None:
        """Send ``pusher:error`` with ``code`` and close with the same code."""
        self.error(code, message)
        self.close(code, message)

    async def _write_loop(self) -> None:
        send = self._asgi_send
        queue = self._queue
        wake = self._wake
        try:
            while True:
                await wake.wait()
                wake.clear()
                while queue:
                    frame = queue.popleft()
                    self._queued_bytes -= len(frame)
                    await send({"type": "websocket.send", "text": frame})
                if self.close_code is not None:
                    await send(
                        {
                            "type": "websocket.close",
                            "code": self.close_code,
                            "reason": self.close_reason[:120],
                        }
                    )
                    return
        except (OSError, RuntimeError, asyncio.CancelledError):
            # the peer went away (or we are being torn down): nothing left to deliver
            if self.close_code is None:
                self.close_code = 1006
            return

    def kill(self) -> None:
        """Drop the TCP connection now, whatever is still unsent (a peer that does not read
        would otherwise hold it), and let the endpoint forget the socket."""
        if self.on_kill is not None:
            self.on_kill()
        if self.on_abort is not None:
            self.on_abort()

    async def stop_writer(self) -> None:
        """Cancel the writer (the socket is gone) and wait for it."""
        writer = self._writer
        if writer is not None and not writer.done():
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
