"""Rate limits of the HTTP API: per client IP (``rate_limiter.api_rate_limit``) on every
``/apps/...`` and ``/users/...`` route, and per app on publishing
(``max_backend_events_per_second``, one point per channel of each event) and reading
(``max_read_requests_per_second``).

Limited routes carry ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset``
(whole seconds until the window ends) of the tightest limit that applied, on allowed and
refused answers alike; a refusal is 429 ``rate_limited`` with ``Retry-After`` (seconds).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from ..config import App, Config
from ..metrics import Metrics
from ..rate_limiter import Decision, RateLimiter, client_ip
from .errors import ApiError

Handler = Callable[[Request], Awaitable[Response]]

APP_WINDOW_SECONDS = 1


def rate_headers(decision: Decision) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(_seconds(decision)),
    }


def _seconds(decision: Decision) -> int:
    return max(1, math.ceil(decision.reset_after_seconds))


def rate_limited(decision: Decision, message: str) -> ApiError:
    headers = rate_headers(decision)
    headers["Retry-After"] = str(_seconds(decision))
    return ApiError(429, "rate_limited", message, headers)


def _tightest(decisions: list[Decision]) -> Decision:
    refused = [d for d in decisions if not d.allowed]
    return refused[0] if refused else min(decisions, key=lambda d: (d.remaining, -d.limit))


class ApiLimits:
    """The limits of one node's HTTP API over its rate limiter. The per-app limits apply
    whenever an app sets them (as in soketi); ``rate_limiter.enabled`` switches the per-IP
    limit. Rate headers are added to the answers of routes where a limit was counted.
    Every check is counted in ``metrics`` (per-IP ones under the app id ``global``)."""

    def __init__(self, config: Config, limiter: RateLimiter, metrics: Metrics) -> None:
        self.enabled = config.rate_limiter.enabled
        self.per_ip = config.rate_limiter.api_rate_limit
        self.limiter = limiter
        self.metrics = metrics

    def limited(self, handler: Handler) -> Handler:
        """``handler`` behind the per-IP limit, with the rate headers added to its answer
        (including its error answers)."""

        async def wrapped(request: Request) -> Response:
            decisions: list[Decision] = []
            request.state.rate_decisions = decisions
            try:
                if self.enabled:
                    await self._per_ip(request, decisions)
                response = await handler(request)
            except ApiError as exc:
                response = exc.response()
            if decisions:
                response.headers.update(rate_headers(_tightest(decisions)))
            return response

        return wrapped

    async def _per_ip(self, request: Request, decisions: list[Decision]) -> None:
        limit = self.per_ip
        peer = request.client.host if request.client else None
        ip = client_ip(peer, request.headers.getlist("x-forwarded-for"), limit.trust_hops)
        decision = await self.limiter.hit(
            f"{limit.identifier}:{ip}", limit.max_requests, limit.window_seconds
        )
        self.metrics.rate_limit("global", "api_rate_limit", "http_api", decision.allowed)
        decisions.append(decision)
        if not decision.allowed:
            raise rate_limited(
                decision,
                f"Too many API requests from {ip}: at most {limit.max_requests} per "
                f"{limit.window_seconds} s",
            )

    async def backend_events(self, request: Request, app: App, points: int) -> None:
        """Count ``points`` (channels) against the app's ``max_backend_events_per_second``."""
        limit = app.max_backend_events_per_second
        if limit is not None:
            await self._per_app(
                request, app.id, "backend_events", limit, points,
                f"App {app.id} may publish at most {limit} events per second (one per channel)",
            )  # fmt: skip

    async def read_request(self, request: Request, app: App) -> None:
        """Count one request against the app's ``max_read_requests_per_second``."""
        limit = app.max_read_requests_per_second
        if limit is not None:
            await self._per_app(
                request, app.id, "read_requests", limit, 1,
                f"App {app.id} may make at most {limit} read requests per second",
            )  # fmt: skip

    async def _per_app(
        self, request: Request, app_id: str, kind: str, limit: int, cost: int, message: str
    ) -> None:
        """Count ``cost`` against the app's ``max_<kind>_per_second`` (key
        ``app:<id>:<kind>``)."""
        decision = await self.limiter.hit(f"app:{app_id}:{kind}", limit, APP_WINDOW_SECONDS, cost)
        self.metrics.rate_limit(app_id, f"max_{kind}_per_second", "http_api", decision.allowed)
        decisions: list[Decision] | None = getattr(request.state, "rate_decisions", None)
        if decisions is not None:
            decisions.append(decision)
        if not decision.allowed:
            raise rate_limited(decision, message)
