"""``Connection``: one WebSocket's Pusher state and its outbound frames.

Sending is synchronous and cheap: ``send`` (a reply to this socket, counted in its app's
metrics) and ``push`` (a broadcast's frame: the broadcast is counted once for every socket)
encode the frame (once per fan-out: ``wire.text_frame``) and add it to the socket's pending
frames; the node's ``Flusher`` writes every socket's pending frames to its transport once per
event-loop iteration, in one write, so k events in one iteration cost one system call per
socket, not k. A socket whose transport holds more than the limits allow (its peer does not
read) is a slow consumer and is closed (4100).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Protocol

from ..config import App
from ..metrics import AppMetrics
from ..protocol import frames
from ..protocol.errors import ErrorCode
from ..protocol.frames import PresenceMember
from .wire import close_frame, text_frame

log = logging.getLogger("sockudo_py.ws")

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


class Sink(Protocol):
    """Where a connection's bytes go: its WebSocket's transport (``ws.socket_protocol``)."""

    def write(self, data: bytes) -> int:
        """Write ``data`` (whole frames); returns how many bytes the transport still holds
        (the peer has not taken them yet). Writing to a gone socket does nothing."""

    def buffered(self) -> int:
        """How many bytes the transport still holds."""

    def close_sent(self) -> None:
        """The close frame is written: wait (briefly) for the peer's, then close the TCP
        connection."""

    def abort(self) -> None:
        """Drop the TCP connection now, whatever is unsent."""


class Flusher:
    """Writes the frames connections have pending, once per event-loop iteration.

    ``add`` registers a connection that has frames pending (once per iteration); the
    flush is scheduled with ``call_soon``, so it runs after everything already ready, and a
    burst of publishes handled in one iteration reaches each socket in one write.
    """

    __slots__ = ("_dirty", "_scheduled")

    def __init__(self) -> None:
        self._dirty: list[Connection] = []
        self._scheduled = False

    def add(self, conn: Connection) -> None:
        self._dirty.append(conn)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush()


class Connection:
    """A connected socket of ``app``.

    ``channels`` maps each subscribed channel to its presence member (or ``None``).
    Frames are pending until the ``flusher`` writes them to the ``sink``. The limits
    ``max_messages`` / ``max_bytes`` bound what the transport may hold for a peer that does
    not read (frames counted since its buffer was last empty, bytes as the transport counts
    them); past them the socket is closed 4100, or, with ``drop_when_full``, new frames are
    dropped until the peer catches up.
    After ``close`` nothing more is queued; what was queued is written, then the close frame.
    ``abort`` drops what is pending first (slow consumers).
    """

    __slots__ = (
        "_close_pending",
        "_encode",
        "_events_count",
        "_events_window",
        "_flusher",
        "_full",
        "_pending",
        "_sink",
        "_stuck",
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
        sink: Sink,
        flusher: Flusher,
        max_messages: int,
        max_bytes: int | None,
        drop_when_full: bool = False,
        metrics: AppMetrics | None = None,
        encode: Callable[[str], bytes] = text_frame,
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
        self._sink = sink
        self._flusher = flusher
        self._encode = encode
        self._pending: bytes | list[bytes] | None = None
        self._close_pending = False
        self._stuck = 0  # frames written since the transport last held nothing
        self._full = False
        self._events_window = 0.0
        self._events_count = 0

    @property
    def closing(self) -> bool:
        return self.close_code is not None

    def send(self, frame: str) -> None:
        """Queue a frame for this socket alone, counted in the app's metrics."""
        if self.push(frame) and self.metrics is not None:
            self.metrics.frame_sent(frame)

    def push(self, frame: str) -> bool:
        """Queue a frame of a broadcast (counted by the broadcast); False if it was not
        queued."""
        if self.close_code is not None or (self._full and not self._caught_up()):
            return False
        self._queue(self._encode(frame))
        return True

    def _queue(self, data: bytes) -> None:
        # One frame waits as bytes, more as a list: bytes are not tracked by the cyclic
        # GC, so a fan-out to thousands of sockets allocates nothing it must scan (and
        # promote into the old generation, whose full collections stall the loop).
        pending = self._pending
        if pending is None:
            self._pending = data
            self._flusher.add(self)
        elif isinstance(pending, bytes):
            self._pending = [pending, data]
        else:
            pending.append(data)

    def _caught_up(self) -> bool:
        """A dropping socket's peer has read what the transport held: take frames again."""
        if self._sink.buffered():
            return False
        self._full, self._stuck = False, 0
        return True

    def flush(self) -> None:
        """Write what is pending (the flusher calls this); then the close frame, if due."""
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        sink = self._sink
        if isinstance(pending, bytes):
            frames = 1
            held = sink.write(pending)
        else:
            frames = len(pending)
            held = sink.write(b"".join(pending))
        if self._close_pending:
            self._close_pending = False
            sink.close_sent()
            return
        if not held:
            self._stuck = 0
            return
        self._stuck += frames
        over_bytes = self.max_bytes is not None and held > self.max_bytes
        if self._stuck > self.max_messages or over_bytes:
            if self.drop_when_full:
                self._full = True
                return
            if self.metrics is not None:
                self.metrics.slow_consumer()
            self.abort(ErrorCode.OVER_CAPACITY, "Slow consumer: send buffer full")

    def close(self, code: int, reason: str) -> None:
        """Close with ``code`` once what is queued is sent (the server closes: logged)."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            self._queue(close_frame(code, reason))
            self._close_pending = True
            log_connection_error(log, "closing socket", self.app.id, self.socket_id, code, reason)

    def abort(self, code: int, reason: str) -> None:
        """Close at once: drop whatever is pending and the TCP connection (a peer that does
        not read would never take the close frame)."""
        if self.close_code is not None:
            return
        self._pending = None
        self.close(code, reason)
        self.kill()

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

    def kill(self) -> None:
        """Drop the TCP connection now, whatever is still unsent (a peer that does not read
        would otherwise hold it); the socket protocol then lets the endpoint forget it."""
        self._pending = None
        self._close_pending = False
        self._sink.abort()
