"""The HTTP API routes: ``/apps/{app_id}/...`` (signed) and ``/up``, ``/usage`` (open)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..adapters import Adapter, Answer
from ..app_manager import AppManager
from ..cache import Cache, channel_cache_key
from ..config import App, Config
from ..console.tap import Tap
from ..metrics import Metrics
from ..protocol import frames
from ..protocol.channels import ChannelKind, channel_type, validate_channel_name
from ..protocol.errors import ProtocolError
from ..rate_limiter import NoRateLimiter, RateLimiter
from .auth import authenticate, read_body
from .errors import ApiError, bad_request
from .events import Event, parse_event, parse_info
from .limits import ApiLimits, Handler
from .usage import memory_usage


class HttpApi:
    """Handlers of the HTTP API over the node's drivers; publishes are shown in the
    console's log through ``tap``."""

    def __init__(
        self,
        config: Config,
        app_manager: AppManager,
        adapter: Adapter,
        cache: Cache,
        metrics: Metrics,
        rate_limiter: RateLimiter | None = None,
        tap: Tap | None = None,
    ) -> None:
        self.config = config
        self.tap = Tap(adapter.node_id) if tap is None else tap
        self.limits = ApiLimits(
            config, NoRateLimiter() if rate_limiter is None else rate_limiter, metrics
        )
        self.metrics = metrics
        self.app_manager = app_manager
        self.adapter = adapter
        self.cache = cache
        self.body_limit = int(config.http_api.request_limit_in_mb * 1024 * 1024)
        self.draining = False  # set when the node begins its graceful shutdown

    def routes(self) -> list[Route]:
        def limited(handler: Handler) -> Handler:
            # the per-IP API limit and the rate headers, inside the call's metrics
            return self._measured(self.limits.limited(handler))

        return [
            Route("/apps/{app_id}/events", limited(self.events), methods=["POST"]),
            Route("/apps/{app_id}/batch_events", limited(self.batch_events), methods=["POST"]),
            Route("/apps/{app_id}/channels", limited(self.channels), methods=["GET"]),
            Route("/apps/{app_id}/channels/{channel}", limited(self.channel), methods=["GET"]),
            Route("/apps/{app_id}/channels/{channel}/users", limited(self.users), methods=["GET"]),
            Route(
                "/apps/{app_id}/users/{user_id}/terminate_connections",
                limited(self.terminate),
                methods=["POST"],
            ),
            # the PyPI pusher SDK (3.x) posts here, without /apps/{app_id}; the app is the
            # one owning auth_key
            Route(
                "/users/{user_id}/terminate_connections", limited(self.terminate), methods=["POST"]
            ),
            Route("/up", self.up, methods=["GET"]),
            Route("/up/{app_id}", self.up_app, methods=["GET"]),
            Route("/usage", self.usage, methods=["GET"]),
        ]

    def _measured(self, handler: Handler) -> Handler:
        """``handler``, its call counted in the metrics of the app it authenticated as (its
        body sizes in and out), whatever its answer."""

        async def measured(request: Request) -> Response:
            response = await handler(request)
            app_id = getattr(request.state, "app_id", None)
            if app_id is not None:
                self.metrics.http_call(app_id, request.state.body_size, len(response.body))
            return response

        return measured

    async def _signed(self, request: Request) -> tuple[App, bytes]:
        body = await read_body(request, self.body_limit)
        app = await authenticate(request, self.app_manager, body)
        request.state.app_id, request.state.body_size = app.id, len(body)
        return app, body

    async def _json(self, request: Request) -> tuple[App, Any]:
        app, body = await self._signed(request)
        try:
            return app, orjson.loads(body)
        except orjson.JSONDecodeError:
            raise bad_request("The body is not valid JSON") from None

    # --- publishing ---------------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        started = time.monotonic()
        app, body = await self._json(request)
        return await self.trigger(request, app, body, started)

    async def trigger(
        self, request: Request, app: App, body: Any, started: float, via: str = "http"
    ) -> Response:
        """``POST /apps/{id}/events`` once the request is authenticated as ``app`` (the
        console's event creator calls it too, ``via`` ``console``): validate the event
        ``body``, count it against the app's limits, publish it, answer its ``info``."""
        event = parse_event(body, app)
        await self.limits.backend_events(request, app, len(event.channels))
        await self._publish(app, event, started, via)
        if not event.info:
            return JSONResponse({})
        answers: list[Answer[int]] = []
        info = await self._channels_info(app, event, answers)
        return cluster_response({"channels": info}, answers)

    async def batch_events(self, request: Request) -> Response:
        started = time.monotonic()
        app, body = await self._json(request)
        batch = body.get("batch") if isinstance(body, dict) else None
        if not isinstance(batch, list):
            raise bad_request('The body must be {"batch": [event, ...]}')
        if len(batch) > app.max_event_batch_size:
            raise bad_request(
                f"A batch may hold at most {app.max_event_batch_size} events", "limit_exceeded"
            )
        events = [parse_event(item, app) for item in batch]
        await self.limits.backend_events(request, app, sum(len(e.channels) for e in events))
        for event in events:
            await self._publish(app, event, started)
        if not any(event.info for event in events):
            return JSONResponse({})
        answers: list[Answer[int]] = []
        batch_info = []
        for event in events:
            info = await self._channels_info(app, event, answers)
            batch_info.append(info[event.channels[0]] if event.info else {})
        return cluster_response({"batch": batch_info}, answers)

    async def _publish(self, app: App, event: Event, started: float, via: str = "http") -> None:
        """Broadcast ``event`` on each of its channels; ``started``: when the request came
        in (``time.monotonic()``), for the broadcast latency; ``via``: for the console's
        log."""
        if self.tap.active:
            self.tap.published(app.id, event.channels, event.name, event.data, event.socket_id, via)
        ttl = self.config.channel_limits.cache_ttl
        for channel in event.channels:
            frame = frames.channel_event(event.name, channel, event.data)
            if channel_type(channel).is_cache:
                await self.cache.set(channel_cache_key(app.id, channel), frame, ttl)
            await self.adapter.broadcast(app.id, channel, frame, event.socket_id, started)

    async def _channels_info(
        self, app: App, event: Event, answers: list[Answer[int]]
    ) -> dict[str, dict[str, int]]:
        """The ``info`` asked for on each channel of ``event``; cluster answers go to
        ``answers``."""
        result: dict[str, dict[str, int]] = {}
        for channel in event.channels:
            info: dict[str, int] = {}
            if "subscription_count" in event.info:
                answer = await self.adapter.channel_subscription_count(app.id, channel)
                answers.append(answer)
                info["subscription_count"] = answer.value
            if "user_count" in event.info and _is_presence(channel):
                info["user_count"] = len(await self.adapter.channel_members(app.id, channel))
            result[channel] = info
        return result

    # --- queries ------------------------------------------------------------------------

    async def channels(self, request: Request) -> Response:
        app, _ = await self._signed(request)
        await self.limits.read_request(request, app)
        prefix = request.query_params.get("filter_by_prefix", "")
        info = parse_info(request.query_params.get("info"), ("user_count", "subscription_count"))
        if "user_count" in info and not prefix.startswith("presence-"):
            raise bad_request("info=user_count needs filter_by_prefix=presence-")
        answer = await self.adapter.channels(app.id)
        result: dict[str, dict[str, int]] = {}
        for name, count in sorted(answer.value.items()):
            if not name.startswith(prefix) or count <= 0:
                continue
            entry: dict[str, int] = {}
            if "subscription_count" in info:
                entry["subscription_count"] = count
            if "user_count" in info:
                entry["user_count"] = len(await self.adapter.channel_members(app.id, name))
            result[name] = entry
        return cluster_response({"channels": result}, [answer])

    async def channel(self, request: Request) -> Response:
        app, _ = await self._signed(request)
        await self.limits.read_request(request, app)
        channel = self._channel_param(request, app)
        info = parse_info(
            request.query_params.get("info"), ("user_count", "subscription_count", "cache")
        )
        presence = _is_presence(channel)
        if "user_count" in info and not presence:
            raise bad_request("info=user_count is only available on presence channels")
        answer = await self.adapter.channel_subscription_count(app.id, channel)
        count = answer.value
        body: dict[str, Any] = {"occupied": count > 0}
        if "subscription_count" in info:
            body["subscription_count"] = count
        if "user_count" in info:
            body["user_count"] = len(await self.adapter.channel_members(app.id, channel))
        if "cache" in info and channel_type(channel).is_cache:
            key = channel_cache_key(app.id, channel)
            cached, ttl = await self.cache.get(key), await self.cache.ttl(key)
            if cached is not None:
                body["cache"] = {"data": cached, "ttl": int(ttl or 0)}
        return cluster_response(body, [answer])

    async def users(self, request: Request) -> Response:
        app, _ = await self._signed(request)
        await self.limits.read_request(request, app)
        channel = self._channel_param(request, app)
        if not _is_presence(channel):
            raise bad_request("Users are only available on presence channels")
        members = await self.adapter.channel_members(app.id, channel)
        return JSONResponse({"users": [{"id": key} for key in members]})

    async def terminate(self, request: Request) -> Response:
        app, _ = await self._signed(request)
        await self.adapter.terminate_user_connections(app.id, request.path_params["user_id"])
        return JSONResponse({})

    @staticmethod
    def _channel_param(request: Request, app: App) -> str:
        channel: str = request.path_params["channel"]
        try:
            return validate_channel_name(channel, app.max_channel_name_length)
        except ProtocolError as exc:
            raise bad_request(exc.message) from None

    # --- health -------------------------------------------------------------------------

    async def up(self, request: Request) -> Response:
        if self.draining:
            return _health("DRAINING", 503)
        return _health("DEGRADED" if self.adapter.degraded else "OK")

    async def up_app(self, request: Request) -> Response:
        if self.draining:
            return _health("DRAINING", 503)
        app = await self.app_manager.find_by_id(request.path_params["app_id"])
        if app is None:
            return _health("NOT_FOUND", 404)
        if not app.enabled:
            return _health("ERROR", 503)
        return await self.up(request)

    async def usage(self, request: Request) -> Response:
        if not self.config.http_api.usage_enabled:
            raise ApiError(404, "not_found", "Usage reporting is disabled")
        return JSONResponse({"memory": memory_usage()})


PARTIAL_HEADER = "X-Sockudo-Partial"


def cluster_response(body: dict[str, Any], answers: list[Answer[Any]]) -> JSONResponse:
    """``body`` as JSON; if a cluster query behind it went unanswered by some node, the
    answer is marked partial: ``"partial": true`` in the body and the header
    ``X-Sockudo-Partial: <missing>/<nodes>``."""
    partial = [answer for answer in answers if not answer.complete]
    if not partial:
        return JSONResponse(body)
    worst = max(partial, key=lambda answer: answer.missing)
    body["partial"] = True
    return JSONResponse(body, headers={PARTIAL_HEADER: f"{worst.missing}/{worst.nodes}"})


def _health(status: str, code: int = 200) -> Response:
    """A health answer: ``status`` as the body and in ``X-Health-Check``."""
    return PlainTextResponse(status, code, headers={"X-Health-Check": status})


def _is_presence(channel: str) -> bool:
    return channel_type(channel).kind is ChannelKind.PRESENCE
