"""The ``/app/{key}`` WebSocket endpoint: admission, teardown and the timers."""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..adapters import Adapter
from ..app_manager import AppManager, AppManagerUnavailable
from ..config import App, Config
from ..console.tap import Tap
from ..metrics import Metrics
from ..protocol import frames
from ..protocol.errors import ErrorCode
from ..rate_limiter import NoRateLimiter, RateLimiter, client_ip
from .connection import Connection, Flusher, log_connection_error
from .handler import PusherHandler
from .origins import origin_allowed

if TYPE_CHECKING:
    from .socket_protocol import PusherSocket

log = logging.getLogger("sockudo_py.ws")

SHUTTING_DOWN = "Server is shutting down"


def new_socket_id() -> str:
    """Two random integers joined by a dot, as Pusher's socket ids are."""
    return f"{secrets.randbelow(10**10)}.{secrets.randbelow(10**10)}"


class PusherEndpoint:
    """The ``/app/{key}`` connections of one node: admission, teardown and the timers.

    ``open`` admits a socket whose handshake ``ws.socket_protocol`` has answered; ``release``
    forgets it once it is gone. ``connections`` holds every open connection; ``sweep`` (run
    by ``run_timers``) sends the activity ping, closes 4201 when no pong follows, and closes
    4009 sockets that did not authenticate in time where the app asks for it. Connections
    opened and closed are shown in the console's log through ``tap``.
    """

    def __init__(
        self,
        config: Config,
        app_manager: AppManager,
        adapter: Adapter,
        handler: PusherHandler,
        metrics: Metrics,
        rate_limiter: RateLimiter | None = None,
        tap: Tap | None = None,
    ) -> None:
        self.config = config
        self.tap = Tap(adapter.node_id) if tap is None else tap
        self.metrics = metrics
        self.rate_limiter = NoRateLimiter() if rate_limiter is None else rate_limiter
        self.app_manager = app_manager
        self.adapter = adapter
        self.handler = handler
        self.flusher = Flusher()
        self.connections: dict[str, Connection] = {}
        self.leaving = 0  # sockets gone from ``connections``, still leaving their channels
        self.accepting = True

    async def open(
        self,
        socket: PusherSocket,
        key: str,
        headers: dict[str, str],
        client: str | None,
        encode: Callable[[str], bytes] | None = None,
    ) -> None:
        """Admit ``socket`` (upgraded, for app ``key``): ``pusher:connection_established``,
        or ``pusher:error`` and a close with the refusal's code. ``encode`` is the socket's
        frame encoder when it negotiated compression."""
        socket_id = new_socket_id()
        app, refusal = await self._admit(key, headers, client)
        if socket.gone:
            return
        if refusal is not None:
            code, message = refusal
            app_id = app.id if app is not None else None
            log_connection_error(log, "connection refused", app_id, socket_id, code, message)
            self.metrics.connection_refused(app_id or "", code)
            socket.refuse(frames.error(code, message), code, message)
            return
        assert app is not None
        ws = self.config.websocket
        conn = Connection(
            socket_id,
            app,
            socket,
            self.flusher,
            ws.max_messages,
            ws.max_bytes,
            drop_when_full=not ws.disconnect_on_buffer_full,
            metrics=self.metrics.app(app.id),
            **({} if encode is None else {"encode": encode}),
        )
        socket.conn = conn
        self.connections[socket_id] = conn
        self.metrics.connection_opened(app.id)
        if self.tap.active:
            self.tap.connected(app.id, socket_id)
        await self.adapter.add_socket(app.id, conn)
        conn.send(frames.connection_established(socket_id, self.config.activity_timeout))
        conn.flush()  # now, with the 101: the client waits for it to subscribe

    async def release(self, conn: Connection, handling: asyncio.Task[None] | None) -> None:
        """Forget ``conn``, whose socket is gone, once the frame it was handling (cancelled)
        is done: it leaves its channels, signs out, and leaves the registry."""
        if handling is not None:
            await asyncio.wait([handling])
        self.connections.pop(conn.socket_id, None)
        self.metrics.connection_closed(conn.app.id)
        self.leaving += 1
        try:
            await self.handler.disconnected(conn)
        except Exception:
            log.exception("socket %s: leaving its channels failed", conn.socket_id)
        finally:
            self.leaving -= 1
        if self.tap.active:
            self.tap.disconnected(conn.app.id, conn.socket_id, conn.close_code)

    def refused_upgrade(self) -> None:
        """An upgrade refused with HTTP 503: the node is draining (as Sockudo does)."""
        log_connection_error(log, "upgrade refused", None, "-", 503, SHUTTING_DOWN, quiet=True)
        self.metrics.connection_refused("", ErrorCode.RECONNECT)

    async def _admit(
        self, key: str, headers: dict[str, str], client: str | None
    ) -> tuple[App | None, tuple[int, str] | None]:
        """The app of the key in the path, and the refusal (code, message) if any."""
        app, refusal = await self._check(key, headers, client)
        if refusal is None and not self.accepting:
            # the node began draining during the lookups (checked last: nothing awaits from
            # here until the socket is in ``connections``, which ``close_all`` closes)
            refusal = ErrorCode.RECONNECT, SHUTTING_DOWN
        return app, refusal

    async def _check(
        self, key: str, headers: dict[str, str], client: str | None
    ) -> tuple[App | None, tuple[int, str] | None]:
        if not self.accepting:
            return None, (ErrorCode.RECONNECT, SHUTTING_DOWN)
        if self.config.rate_limiter.enabled:
            refusal = await self._connect_limit(headers, client)
            if refusal is not None:
                return None, refusal
        try:
            app = await self.app_manager.find_by_key(key)
        except AppManagerUnavailable as exc:
            log.warning("app lookup for key %r failed: %s", key, exc)
            return None, (ErrorCode.APP_NOT_FOUND, "App lookup failed: the app store is down")
        except Exception:
            log.exception("app lookup for key %r failed", key)
            app = None
        if app is None:
            return None, (ErrorCode.APP_NOT_FOUND, f"App key {key} does not exist")
        if not app.enabled:
            return app, (ErrorCode.APP_DISABLED, "Application is disabled")
        if app.allowed_origins and not origin_allowed(headers.get("origin"), app.allowed_origins):
            return app, (ErrorCode.UNAUTHORIZED, "Origin not allowed")
        node_limit = self.config.max_connections
        if node_limit > 0 and len(self.connections) >= node_limit:
            return app, (ErrorCode.OVER_CAPACITY, "Over capacity")
        if app.max_connections > 0 and (
            (await self.adapter.sockets_count(app.id)).value >= app.max_connections
        ):
            return app, (ErrorCode.APP_OVER_QUOTA, "Application is over connection quota")
        return app, None

    async def _connect_limit(
        self, headers: dict[str, str], client: str | None
    ) -> tuple[int, str] | None:
        """``rate_limiter.websocket_rate_limit`` per client IP, checked before the app lookup.
        Over it: 4100 (over capacity, "reconnect with back-off" in pusher-js), so the client
        comes back later instead of giving up (4000-4099) or hammering (4200-4299)."""
        limit = self.config.rate_limiter.websocket_rate_limit
        forwarded = headers.get("x-forwarded-for")
        ip = client_ip(client, [forwarded] if forwarded else [], limit.trust_hops)
        decision = await self.rate_limiter.hit(
            f"{limit.identifier}:{ip}", limit.max_requests, limit.window_seconds
        )
        self.metrics.rate_limit(
            "global", "websocket_rate_limit", "websocket_upgrade", decision.allowed
        )
        if decision.allowed:
            return None
        retry = max(1, math.ceil(decision.reset_after_seconds))
        return ErrorCode.OVER_CAPACITY, f"Too many connections from {ip}; retry in {retry} s"

    # --- timers ------------------------------------------------------------------------

    def sweep(self, now: float) -> None:
        """One pass of the activity and authentication timers over every connection."""
        idle_after = self.config.activity_timeout
        auth_after = self.config.user_authentication_timeout
        for conn in list(self.connections.values()):
            if conn.closing:
                continue
            if conn.ping_sent_at is not None:
                if now - conn.ping_sent_at > self.config.websocket.pong_timeout:
                    self.metrics.connection_error(conn.app.id, "pong_not_received")
                    conn.close(ErrorCode.PONG_NOT_RECEIVED, "Pong reply not received")
                    continue
            elif now - conn.last_activity > idle_after:
                conn.ping_sent_at = now
                conn.send(frames.PING)
            if (
                conn.app.enable_user_authentication
                and not conn.authenticated
                and now - conn.connected_at > auth_after
            ):
                self.metrics.connection_error(conn.app.id, "authentication_timeout")
                conn.fail(ErrorCode.UNAUTHORIZED, "Connection not authorized within timeout.")

    async def run_timers(self) -> None:
        interval = max(0.1, min(1.0, self.config.activity_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            self.sweep(time.monotonic())

    @property
    def busy(self) -> bool:
        """Sockets are open, or still leaving their channels."""
        return bool(self.connections) or self.leaving > 0

    def close_all(self, code: int, reason: str) -> None:
        """Refuse new sockets and close every open one: ``pusher:error`` with ``code``, then
        the close frame, once what is queued before them is sent (graceful shutdown)."""
        self.accepting = False
        for conn in list(self.connections.values()):
            conn.fail(code, reason)

    def kill_all(self, code: int, reason: str) -> None:
        """Drop every socket still open at once, unsent frames and all (the end of a drain:
        peers that did not take their close in time)."""
        for conn in list(self.connections.values()):
            conn.close(code, reason)
            conn.kill()
