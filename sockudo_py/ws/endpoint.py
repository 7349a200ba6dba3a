"""The ``/app/{key}`` WebSocket endpoint: admission, the read loop and the timers."""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import MutableMapping
from typing import Any

from ..adapters import Adapter
from ..app_manager import AppManager, AppManagerUnavailable
from ..config import App, Config
from ..console.tap import Tap
from ..metrics import Metrics
from ..protocol import frames
from ..protocol.errors import ErrorCode
from ..rate_limiter import NoRateLimiter, RateLimiter, client_ip
from .activity import ABORT_KEY, SCOPE_KEY
from .connection import AsgiSend, Connection, log_connection_error
from .handler import PusherHandler
from .origins import origin_allowed

log = logging.getLogger("sockudo_py.ws")

Scope = MutableMapping[str, Any]

SHUTTING_DOWN = "Server is shutting down"
DENIAL_EXTENSION = "websocket.http.response"
"""The ASGI extension that lets the app answer an upgrade with an HTTP response."""
PROTOCOL_ERRORS = {
    1002: "protocol error",
    1003: "unsupported data",
    1007: "invalid frame payload data",
    1009: "message too big",
}
"""Close codes of the WebSocket layer's own protocol errors (logged)."""


def new_socket_id() -> str:
    """Two random integers joined by a dot, as Pusher's socket ids are."""
    return f"{secrets.randbelow(10**10)}.{secrets.randbelow(10**10)}"


class PusherEndpoint:
    """ASGI app for ``/app/{key}``: one instance serves every connection of the node.

    ``connections`` holds every open connection; ``sweep`` (run by ``run_timers``) sends the
    activity ping, closes 4201 when no pong follows, and closes 4009 sockets that did not
    authenticate in time where the app asks for it. Connections opened and closed are
    shown in the console's log through ``tap``.
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
        self.connections: dict[str, Connection] = {}
        self.leaving = 0  # sockets gone from ``connections``, still leaving their channels
        self.accepting = True

    async def __call__(self, scope: Scope, receive: Any, send: AsgiSend) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        socket_id = new_socket_id()
        if not self.accepting and DENIAL_EXTENSION in scope.get("extensions", {}):
            await self._deny(send, socket_id)
            return
        await send({"type": "websocket.accept"})
        app, refusal = await self._admit(scope)
        if refusal is not None:
            code, message = refusal
            app_id = app.id if app is not None else None
            log_connection_error(log, "connection refused", app_id, socket_id, code, message)
            self.metrics.connection_refused(app_id or "", code)
            await send({"type": "websocket.send", "text": frames.error(code, message)})
            await send({"type": "websocket.close", "code": code, "reason": message})
            return
        assert app is not None
        ws = self.config.websocket
        conn = Connection(
            socket_id,
            app,
            send,
            ws.max_messages,
            ws.max_bytes,
            drop_when_full=not ws.disconnect_on_buffer_full,
            metrics=self.metrics.app(app.id),
        )
        task = asyncio.current_task()
        if task is not None:

            def on_abort() -> None:
                task.cancel()

            conn.on_abort = on_abort
        conn.on_kill = scope.get(ABORT_KEY)
        self.connections[conn.socket_id] = conn
        scope[SCOPE_KEY] = conn
        conn.start()
        self.metrics.connection_opened(app.id)
        if self.tap.active:
            self.tap.connected(app.id, conn.socket_id)
        try:
            await self.adapter.add_socket(app.id, conn)
            conn.send(frames.connection_established(conn.socket_id, self.config.activity_timeout))
            await self._read_loop(conn, receive)
        except asyncio.CancelledError:
            pass  # aborted (slow consumer) or server stopping
        finally:
            self.connections.pop(conn.socket_id, None)
            self.metrics.connection_closed(app.id)
            self.leaving += 1
            try:
                await self.handler.disconnected(conn)
            finally:
                self.leaving -= 1
            if self.tap.active:
                self.tap.disconnected(app.id, conn.socket_id, conn.close_code)
            if conn.close_code is None or conn.close_code == 1006:
                await conn.stop_writer()

    async def _read_loop(self, conn: Connection, receive: Any) -> None:
        handle = self.handler.handle
        metrics = self.metrics.app(conn.app.id)
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                if conn.closing:
                    continue
                text = message.get("text")
                raw = text if text is not None else message.get("bytes") or b""
                metrics.frame_received(raw)
                await handle(conn, raw)
            elif kind == "websocket.disconnect":
                if conn.close_code is None:
                    code = message.get("code", 1006)
                    if code in PROTOCOL_ERRORS:  # the WebSocket layer closed it
                        log_connection_error(
                            log, "socket closed", conn.app.id, conn.socket_id, code,
                            PROTOCOL_ERRORS[code],
                        )  # fmt: skip
                    conn.close_code = 1006
                return

    async def _deny(self, send: AsgiSend, socket_id: str) -> None:
        """Refuse the upgrade with HTTP 503 (the node is draining), as Sockudo does."""
        log_connection_error(
            log, "upgrade refused", None, socket_id, 503, SHUTTING_DOWN, quiet=True
        )
        self.metrics.connection_refused("", ErrorCode.RECONNECT)
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 503,
                "headers": [(b"content-type", b"text/plain"), (b"retry-after", b"1")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": SHUTTING_DOWN.encode()})

    async def _admit(self, scope: Scope) -> tuple[App | None, tuple[int, str] | None]:
        """The app of the key in the path, and the refusal (code, message) if any."""
        app, refusal = await self._check(scope)
        if refusal is None and not self.accepting:
            # the node began draining during the lookups (checked last: nothing awaits from
            # here until the socket is in ``connections``, which ``close_all`` closes)
            refusal = ErrorCode.RECONNECT, SHUTTING_DOWN
        return app, refusal

    async def _check(self, scope: Scope) -> tuple[App | None, tuple[int, str] | None]:
        if not self.accepting:
            return None, (ErrorCode.RECONNECT, SHUTTING_DOWN)
        if self.config.rate_limiter.enabled:
            refusal = await self._connect_limit(scope)
            if refusal is not None:
                return None, refusal
        key = scope["path_params"]["key"]
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
        if app.allowed_origins:
            origin = _header(scope, b"origin")
            if not origin_allowed(origin, app.allowed_origins):
                return app, (ErrorCode.UNAUTHORIZED, "Origin not allowed")
        node_limit = self.config.max_connections
        if node_limit > 0 and len(self.connections) >= node_limit:
            return app, (ErrorCode.OVER_CAPACITY, "Over capacity")
        if app.max_connections > 0 and (
            (await self.adapter.sockets_count(app.id)).value >= app.max_connections
        ):
            return app, (ErrorCode.APP_OVER_QUOTA, "Application is over connection quota")
        return app, None

    async def _connect_limit(self, scope: Scope) -> tuple[int, str] | None:
        """``rate_limiter.websocket_rate_limit`` per client IP, checked before the app lookup.
        Over it: 4100 (over capacity, "reconnect with back-off" in pusher-js), so the client
        comes back later instead of giving up (4000-4099) or hammering (4200-4299)."""
        limit = self.config.rate_limiter.websocket_rate_limit
        client = scope.get("client")
        forwarded = [
            value.decode("latin-1")
            for name, value in scope.get("headers", ())
            if name == b"x-forwarded-for"
        ]
        ip = client_ip(client[0] if client else None, forwarded, limit.trust_hops)
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


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None
