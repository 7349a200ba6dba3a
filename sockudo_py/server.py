"""Building and running a node: drivers from a ``Config``, the ASGI app, start and stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import WebSocketRoute

from .adapters import Adapter, create_adapter
from .app_manager import AppManager, create_app_manager
from .cache import Cache, create_cache
from .config import Config, CorsConfig
from .http_api import ApiError, HttpApi
from .http_api.errors import api_error_handler, not_found_handler
from .metrics import Metrics
from .protocol.errors import ErrorCode
from .queue import Queue, create_queue
from .rate_limiter import RateLimiter, create_rate_limiter
from .webhooks import QUEUE_NAME
from .webhooks.delivery import WebhookDelivery
from .webhooks.dispatcher import WebhookDispatcher
from .ws import PusherEndpoint, PusherHandler
from .ws.activity import ActivityAwareWebSocketProtocol

log = logging.getLogger("sockudo_py.server")

UNBOUNDED_ATTEMPTS = 1_000_000
"""The queue's attempt bound for webhook jobs: their own retry window ends them first."""


@dataclass
class Node:
    """Everything one server process runs, built from its ``Config``. Webhooks (``queue``,
    ``webhooks``, ``delivery``) are off with ``queue.driver`` ``none``."""

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

    @classmethod
    def build(cls, config: Config) -> Node:
        cache = create_cache(config)
        app_manager = create_app_manager(config, cache)
        adapter = create_adapter(config)
        metrics = Metrics(config.metrics.prometheus.prefix, config.port)
        adapter.observe(metrics)
        metrics.watch_cluster(
            lambda: adapter.node_count,
            lambda: float(adapter.degraded),
            lambda: adapter.dropped_messages,
        )
        rate_limiter = create_rate_limiter(config)
        queue = create_queue(config)
        webhooks = delivery = None
        if queue is not None:
            webhooks = WebhookDispatcher(app_manager, queue, config.webhooks, view=adapter)
            delivery = WebhookDelivery(app_manager, config.webhooks, metrics)
            adapter.listen(webhooks)
        handler = PusherHandler(adapter, cache, webhooks)
        endpoint = PusherEndpoint(config, app_manager, adapter, handler, metrics, rate_limiter)
        http_api = HttpApi(config, app_manager, adapter, cache, metrics, rate_limiter)
        return cls(
            config, app_manager, adapter, cache, metrics, endpoint, http_api, rate_limiter,
            queue, webhooks, delivery,
        )  # fmt: skip

    def asgi_app(self) -> Starlette:
        routes = [WebSocketRoute("/app/{key}", self.endpoint), *self.http_api.routes()]
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
            await self._stop_webhooks(consumer)
            await self.adapter.stop()
            await self.app_manager.stop()
            await self.rate_limiter.stop()
            await self.cache.stop()

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

    async def _stop_webhooks(self, consumer: asyncio.Task[None] | None) -> None:
        """Queue what the dispatcher holds and let running deliveries finish, each within
        half of ``shutdown_grace_period``; what is left stays queued (a durable queue's next
        consumer sends it)."""
        budget = self.config.shutdown_grace_period / 2
        if self.webhooks is not None:
            await self.webhooks.stop(timeout=budget)
        if self.queue is not None:
            await self.queue.stop(
                timeout=min(budget, self.queue.reliability.shutdown_timeout_ms / 1000)
            )
        if consumer is not None:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
        if self.delivery is not None:
            await self.delivery.close()

    async def drain(self) -> None:
        """Refuse new sockets, close open ones with 4200 and give them a moment to flush."""
        await self.endpoint.close_all(ErrorCode.RECONNECT, "Server is shutting down")
        for _ in range(20):
            if not self.endpoint.connections:
                break
            await asyncio.sleep(0.05)


def cors_middleware(cors: CorsConfig) -> Middleware:
    """Starlette's CORS middleware from the ``cors`` section (``*``/``any`` admit every
    origin, without credentials; ``https://*.example.com`` admits its subdomains)."""
    if any(origin in ("*", "any") for origin in cors.origin):
        origins, pattern, credentials = ["*"], None, False
    else:
        origins = [o for o in cors.origin if "*" not in o]
        wildcards = [re.escape(o).replace(r"\*", "[^/]+") for o in cors.origin if "*" in o]
        pattern = "|".join(wildcards) or None
        credentials = cors.credentials
    return Middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_origin_regex=pattern,
        allow_methods=cors.methods,
        allow_headers=cors.allowed_headers,
        allow_credentials=credentials,
    )


class _Server(uvicorn.Server):
    """uvicorn, but our sockets get 4200 before uvicorn closes them with 1012."""

    def __init__(self, config: uvicorn.Config, node: Node) -> None:
        super().__init__(config)
        self.node = node

    async def shutdown(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        await self.node.drain()
        await super().shutdown(sockets)  # type: ignore[arg-type]


def run(node: Node) -> None:
    """Serve until SIGINT/SIGTERM."""
    config = node.config
    uv_config = uvicorn.Config(
        node.asgi_app(),
        host=config.host,
        port=config.port,
        ws=ActivityAwareWebSocketProtocol,
        ws_max_size=config.websocket_max_payload_kb * 1024,
        ws_ping_interval=None,
        ws_ping_timeout=None,
        log_level="debug" if config.debug else "warning",
        access_log=config.debug,
        lifespan="on",
        # the socket peer stays the peer: X-Forwarded-For is read by the rate limits only,
        # as far as rate_limiter.*.trust_hops says (uvicorn would trust it from 127.0.0.1)
        proxy_headers=False,
        timeout_graceful_shutdown=max(1, int(config.shutdown_grace_period)),
    )
    _Server(uv_config, node).run()
