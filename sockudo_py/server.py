"""Building and running a node: drivers from a ``Config``, the ASGI app, start and stop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import cast

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute

from .adapters import Adapter, create_adapter
from .app_manager import AppManager, create_app_manager
from .cache import Cache, create_cache
from .config import Config, CorsConfig
from .console.routes import Console, disabled_routes
from .console.tap import Tap
from .http_api import ApiError, HttpApi
from .http_api.errors import api_error_handler, not_found_handler
from .metrics import Metrics
from .protocol.errors import ErrorCode
from .queue import Queue, create_queue
from .rate_limiter import RateLimiter, create_rate_limiter
from .tls import abort_stalled_closes, check_tls, start_https_redirect, uvicorn_tls_options
from .webhooks import QUEUE_NAME
from .webhooks.delivery import WebhookDelivery
from .webhooks.dispatcher import WebhookDispatcher
from .workers import reuse_port_socket
from .ws import PusherEndpoint, PusherHandler
from .ws.endpoint import SHUTTING_DOWN
from .ws.origins import admits_any, origins_regex
from .ws.socket_protocol import SocketProtocolFactory

log = logging.getLogger("sockudo_py.server")

UNBOUNDED_ATTEMPTS = 1_000_000
"""The queue's attempt bound for webhook jobs: their own retry window ends them first."""

# Graceful shutdown: each phase may use this share of the time left until the deadline.
SOCKETS_SHARE = 0.4  # open sockets take their 4200 close (the node still listens)
LEAVE_SECONDS = 1.0  # at most, for the cluster's bye to go out
REQUESTS_SHARE = 0.5  # HTTP requests in flight finish (the listeners are closed)
WEBHOOKS_SHARE = 0.4  # held and batched webhooks are queued (dispatcher.stop)
DELIVERIES_SHARE = 0.6  # running deliveries finish; the rest stay queued
DRIVER_SHARE = 0.5  # each driver closes (adapter, app manager, rate limiter, cache)
MIN_HARD_STOP = 1.0
"""The process exits at ``shutdown_grace_period`` after the signal at the latest, whatever
is still running; with a period under this many seconds, at this many seconds."""


class Deadline:
    """When a graceful shutdown must be over: its phases share the time left."""

    def __init__(self, seconds: float, margin: float = 0.0) -> None:
        self.started = time.monotonic()
        self.at = self.started + max(0.0, seconds - margin)

    def left(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def share(self, fraction: float) -> float:
        """``fraction`` of the time left."""
        return self.left() * fraction

    @classmethod
    def for_grace(cls, grace: float) -> Deadline:
        """The phases' deadline for ``shutdown_grace_period`` ``grace``: a little before it,
        leaving the process time to exit."""
        return cls(grace, margin=min(0.5, 0.15 * grace))


@dataclass
class Node:
    """Everything one server process runs, built from its ``Config``. Webhooks (``queue``,
    ``webhooks``, ``delivery``) are off with ``queue.driver`` ``none``; the ``console``
    without ``console.enabled`` (its ``tap`` then stays inactive)."""

    config: Config
    app_manager: AppManager
    adapter: Adapter
    cache: Cache
    metrics: Metrics
    endpoint: PusherEndpoint
    http_api: HttpApi
    rate_limiter: RateLimiter
    queue: Queue | None = None
    webhooks: WebhookDispatcher | None = None
    delivery: WebhookDelivery | None = None
    console: Console | None = None
    deadline: Deadline | None = field(default=None, init=False)
    """Set when the node begins to drain (see :meth:`begin_drain`)."""

    @classmethod
    def build(cls, config: Config, ipc_hub: str | None = None) -> Node:
        """The node of ``config``; a worker of several (``sockudo_py.workers``) whose adapter
        is ``local`` clusters with the others through the supervisor's ``ipc_hub``."""
        check_tls(config.ssl, config.port)
        cache = create_cache(config)
        app_manager = create_app_manager(config, cache)
        adapter = create_adapter(config, ipc_hub)
        metrics = Metrics(config.metrics.prometheus.prefix, config.port)
        adapter.observe(metrics)
        metrics.watch_cluster(
            lambda: adapter.node_count,
            lambda: float(adapter.degraded),
            lambda: adapter.dropped_messages,
        )
        rate_limiter = create_rate_limiter(config)
        queue = create_queue(config)
        tap = Tap(adapter.node_id)
        webhooks = delivery = None
        if queue is not None:
            webhooks = WebhookDispatcher(app_manager, queue, config.webhooks, view=adapter)
            delivery = WebhookDelivery(app_manager, config.webhooks, metrics, tap)
            adapter.listen(webhooks)
        handler = PusherHandler(adapter, cache, webhooks, tap)
        endpoint = PusherEndpoint(config, app_manager, adapter, handler, metrics, rate_limiter, tap)
        http_api = HttpApi(config, app_manager, adapter, cache, metrics, rate_limiter, tap)
        console = None
        if config.console.enabled:
            console = Console(
                config.console, app_manager, adapter, http_api, tap, metrics.message_totals
            )
        return cls(
            config, app_manager, adapter, cache, metrics, endpoint, http_api, rate_limiter,
            queue, webhooks, delivery, console,
        )  # fmt: skip

    def asgi_app(self) -> Starlette:
        """The HTTP API and the console (``/app/{key}`` upgrades never reach it: see
        ``ws.socket_protocol``)."""
        routes: list[BaseRoute] = [*self.http_api.routes()]
        routes += disabled_routes() if self.console is None else self.console.routes()
        return Starlette(
            routes=routes,
            middleware=[cors_middleware(self.config.cors)],
            exception_handlers={
                ApiError: api_error_handler,
                404: not_found_handler,
                405: not_found_handler,
            },
            lifespan=self._lifespan,
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, _: Starlette) -> AsyncIterator[None]:
        await self.cache.start()
        await self.rate_limiter.start()
        await self.app_manager.start()
        await self.adapter.start()
        if self.console is not None:
            await self.console.start()
        loop = asyncio.get_running_loop()
        consumer = None
        if self.queue is not None and self.delivery is not None:
            consumer = loop.create_task(self._deliver_webhooks(self.queue, self.delivery))
        if self.config.metrics.enabled:
            self.metrics.serve(self.config.metrics.host, self.config.metrics.port)
        timers = loop.create_task(self.endpoint.run_timers())
        try:
            yield
        finally:
            timers.cancel()
            if self.console is not None:
                await self.console.stop()
            deadline = self.deadline or Deadline.for_grace(self.config.shutdown_grace_period)
            await self._stop_webhooks(consumer, deadline)
            drivers: list[tuple[str, Callable[[], Awaitable[None]]]] = [
                ("adapter", self.adapter.stop),
                ("app manager", self.app_manager.stop),
                ("rate limiter", self.rate_limiter.stop),
                ("cache", self.cache.stop),
            ]
            for name, stop in drivers:
                await _within(deadline.share(DRIVER_SHARE), stop(), f"stopping the {name}")
            log.info("stopped, %.2fs after the shutdown began", time.monotonic() - deadline.started)

    @staticmethod
    async def _deliver_webhooks(queue: Queue, delivery: WebhookDelivery) -> None:
        """Start the queue (retrying with back-off while its service is unreachable: the
        dispatcher keeps the jobs meanwhile) and consume webhook jobs until it stops."""
        delay = 1.0
        while True:
            try:
                await queue.start()
                break
            except Exception as exc:
                log.error(
                    "webhook queue unreachable (%s); webhooks wait in memory, retrying in %gs",
                    exc, delay,
                )  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        await queue.consume(
            QUEUE_NAME, delivery, concurrency=queue.concurrency, max_attempts=UNBOUNDED_ATTEMPTS
        )

    async def _stop_webhooks(self, consumer: asyncio.Task[None] | None, deadline: Deadline) -> None:
        """Queue what the dispatcher holds, then let running deliveries finish (at most
        ``queue.reliability.shutdown_timeout_ms``), each within its share of the time left;
        what is left stays queued (a durable queue's next consumer sends it)."""
        if self.webhooks is not None:
            await self.webhooks.stop(timeout=deadline.share(WEBHOOKS_SHARE))
        if self.queue is not None:
            share = deadline.share(DELIVERIES_SHARE)
            running = min(share, self.queue.reliability.shutdown_timeout_ms / 1000)
            # (the outer bound covers releasing the unfinished jobs and closing)
            await _within(share, self.queue.stop(timeout=running), "stopping the webhook queue")
        if consumer is not None:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
        if self.delivery is not None:
            await _within(deadline.share(DRIVER_SHARE), self.delivery.close(), "webhook senders")

    # --- graceful shutdown ---------------------------------------------------------------

    def begin_drain(self) -> Deadline:
        """Start draining now (idempotent; safe in a signal handler: no I/O, no await):
        ``/up`` answers 503 ``DRAINING``, WebSocket upgrades are refused with HTTP 503, and
        the process will exit within ``shutdown_grace_period`` whatever happens."""
        if self.deadline is None:
            grace = self.config.shutdown_grace_period
            self.deadline = Deadline.for_grace(grace)
            self.endpoint.accepting = False
            self.http_api.draining = True
            watchdog = threading.Timer(max(grace, MIN_HARD_STOP), self._hard_stop)
            watchdog.daemon = True
            watchdog.start()
        return self.deadline

    def _hard_stop(self) -> None:
        """The end of ``shutdown_grace_period``: exit now (a thread's timer). The line is
        written from yet another thread, waited for briefly: a blocked stderr must not keep
        the process alive."""
        say = threading.Thread(
            target=log.error,
            args=(
                "shutdown_grace_period (%gs) is over with the shutdown unfinished: exiting "
                "now; unsent webhooks stay in a durable queue",
                self.config.shutdown_grace_period,
            ),
            daemon=True,
        )
        say.start()
        say.join(0.2)
        os._exit(1)

    async def close_sockets(self, give_up: Callable[[], bool] = lambda: False) -> None:
        """Phase 1 of the drain, the node still listening: every open socket gets
        ``pusher:error`` 4200 and a 4200 close (pusher-js reconnects at once, to another
        node), within ``SOCKETS_SHARE`` of the time left; a socket whose peer does not take
        its close by then is dropped (at once when ``give_up()`` turns true: a second
        Ctrl-C). Returns once every socket has left its channels."""
        deadline = self.begin_drain()
        endpoint = self.endpoint
        log.info(
            "draining: closing %d socket(s) with 4200, refusing upgrades, /up says DRAINING; "
            "exit within %gs",
            len(endpoint.connections),
            self.config.shutdown_grace_period,
        )
        endpoint.close_all(ErrorCode.RECONNECT, SHUTTING_DOWN)
        until = time.monotonic() + deadline.share(SOCKETS_SHARE)
        while endpoint.connections and time.monotonic() < until and not give_up():
            await asyncio.sleep(0.02)
        if endpoint.connections:
            log.warning(
                "draining: %d socket(s) did not take their close in time: dropped",
                len(endpoint.connections),
            )
            endpoint.kill_all(ErrorCode.RECONNECT, SHUTTING_DOWN)
            until = max(until, time.monotonic() + min(0.2, deadline.left()))
        while endpoint.busy and time.monotonic() < until:
            await asyncio.sleep(0.02)

    async def leave_cluster(self) -> None:
        """Tell the other nodes (their clients see this node's members leave at once)."""
        deadline = self.begin_drain()
        await _within(
            deadline.left(),
            self.adapter.leave(timeout=min(LEAVE_SECONDS, deadline.left())),
            "leaving the cluster",
        )


async def _within(seconds: float, work: Awaitable[None], what: str) -> None:
    """Await ``work`` for at most ``seconds`` (a shutdown step); a timeout or failure is
    logged, not raised, so the next steps still run."""
    try:
        await asyncio.wait_for(work, max(seconds, 0.001))
    except TimeoutError:
        log.warning("shutdown: %s took longer than %.2fs: left behind", what, seconds)
    except Exception:
        log.exception("shutdown: %s failed", what)


def cors_middleware(cors: CorsConfig) -> Middleware:
    """Starlette's CORS middleware from the ``cors`` section, matching origins as the apps'
    ``allowed_origins`` do (``sockudo_py.ws.origins``): ``*``/``any`` admit every origin,
    without credentials; ``https://*.example.com`` admits its subdomains, ``example.com``
    its every scheme."""
    if admits_any(cors.origin):
        origins, pattern, credentials = ["*"], None, False
    else:
        origins, pattern, credentials = [], origins_regex(cors.origin), cors.credentials
    return Middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_origin_regex=pattern,
        allow_methods=cors.methods,
        allow_headers=cors.allowed_headers,
        allow_credentials=credentials,
    )


class _Server(uvicorn.Server):
    """uvicorn with the node's graceful drain (README, "Stopping and rolling"): at the signal
    the node begins to drain; then, sharing one deadline, its sockets are closed with 4200
    while it still listens, the cluster is told, the listeners close and requests in flight
    finish (as uvicorn's own ``shutdown``, bounded), and the lifespan stops the webhooks and
    drivers."""

    def __init__(self, config: uvicorn.Config, node: Node) -> None:
        super().__init__(config)
        self.node = node

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's start-up, after binding the HTTP -> HTTPS redirect (``ssl.redirect_http``)
        so that a port it cannot have stops start-up before any driver starts."""
        ssl = self.node.config.ssl
        redirect = None
        if ssl.enabled and ssl.redirect_http:
            try:
                redirect = await start_https_redirect(self, ssl)
            except OSError as exc:
                log.error("ssl.http_port: cannot listen on port %s: %s", ssl.http_port, exc)
                raise SystemExit(2) from None
        await super().startup(sockets)
        if redirect is not None:
            self.servers.append(redirect)  # closed with the main listener at shutdown
        # What start-up built (modules, config, drivers) lives as long as the process: keep
        # it out of the cyclic GC's full collections, which otherwise traverse it all and
        # stall every socket for tens of milliseconds (bench/README.md, "Current figures").
        gc.freeze()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.node.begin_drain()  # /up and upgrades say so at once, not at the next tick
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        node = self.node
        deadline = node.begin_drain()
        await node.close_sockets(give_up=lambda: self.force_exit)
        await node.leave_cluster()
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        stalled = None
        if self.config.is_ssl:  # TLS peers that never answer close_notify must not hold us
            stalled = asyncio.create_task(abort_stalled_closes(self.server_state.connections))
        for connection in list(self.server_state.connections):
            connection.shutdown()
        share = deadline.share(REQUESTS_SHARE)
        try:
            await asyncio.wait_for(self._wait_tasks_to_complete(), share)
        except TimeoutError:
            tasks = self.server_state.tasks
            log.warning(
                "shutdown: %d request(s) unfinished after %.2fs: cancelled", len(tasks), share
            )
            for task in tasks:
                task.cancel()
        finally:
            if stalled is not None:
                stalled.cancel()
        if not self.force_exit:
            await self.lifespan.shutdown()


def run(node: Node, shared_port: bool = False) -> None:
    """Serve until SIGINT/SIGTERM; with ``shared_port``, on a ``SO_REUSEPORT`` listener that
    the other workers bind too."""
    config = node.config
    sockets_factory = SocketProtocolFactory(
        node.endpoint, config.websocket.compression, config.websocket_max_payload_kb * 1024
    )
    uv_config = uvicorn.Config(
        node.asgi_app(),
        host=config.host,
        port=config.port,
        # /app/{key} connections get the server's own protocol from their first bytes
        # (EntryProtocol); websocket.compression decides permessage-deflate (uvicorn's
        # ws_per_message_deflate has fixed parameters)
        http=cast(type[asyncio.Protocol], sockets_factory.entry),
        ws=cast(type[asyncio.Protocol], sockets_factory),
        ws_per_message_deflate=False,
        ws_max_size=config.websocket_max_payload_kb * 1024,
        ws_ping_interval=None,
        ws_ping_timeout=None,
        log_config=None,  # uvicorn's records go through the root handler (sockudo_py.logs)
        # INFO with debug: access lines and upgrades; uvicorn's DEBUG dumps every frame and
        # header (channel auth, cookies) and is never switched on
        log_level="info" if config.debug else "warning",
        access_log=config.debug,
        lifespan="on",
        # the socket peer stays the peer: X-Forwarded-For is read by the rate limits only,
        # as far as rate_limiter.*.trust_hops says (uvicorn would trust it from 127.0.0.1)
        proxy_headers=False,
        **uvicorn_tls_options(config.ssl),
    )
    sockets = [reuse_port_socket(config.host, config.port)] if shared_port else None
    try:
        _Server(uv_config, node).run(sockets=sockets)
    except KeyboardInterrupt:  # uvicorn re-raises the SIGINT it drained for
        raise SystemExit(130) from None
