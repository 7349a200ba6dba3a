"""``WebhookDelivery``: the queue's handler that sends a webhook job to its endpoint."""

from __future__ import annotations

import logging
import random
import time
from typing import TYPE_CHECKING, NoReturn, Protocol

import httpx
import orjson

from .. import __version__
from ..app_manager import AppManager, AppManagerUnavailable
from ..config import Webhook, WebhookRetry, WebhooksConfig
from ..console.tap import Tap
from ..outage import redact_url
from ..protocol.signatures import sign_webhook
from ..queue import Job, Reject, Retry
from .failure import DeliveryFailed

if TYPE_CHECKING:
    from .lambda_target import LambdaTarget

log = logging.getLogger("sockudo_py.webhooks")

RETRY_STATUSES = frozenset({408, 409, 425, 429})
"""Besides 5xx, the statuses after which a request is tried again (Pusher's rule)."""
MAX_CONNECTIONS = 20
"""Concurrent webhook requests per node at most (as Sockudo)."""
USER_AGENT = f"sockudo-py-webhooks/{__version__}"
SIGNED_HEADERS = frozenset({"x-pusher-key", "x-pusher-signature"})


class DeliveryObserver(Protocol):
    """Receives the outcome of each delivery attempt (metrics): ``webhook_sent`` (2xx),
    ``webhook_failed`` (``retryable`` or not), ``webhook_dead_lettered`` (the job goes to
    the dead letters). Synchronous, cheap, never raises."""

    def webhook_sent(self, app_id: str) -> None: ...

    def webhook_failed(self, app_id: str, retryable: bool) -> None: ...

    def webhook_dead_lettered(self, app_id: str) -> None: ...


class WebhookDelivery:
    """Delivers one queued webhook job (``await delivery(job)``), as a queue handler.

    Contract: the body is sent as queued with ``time_ms`` set to the time of sending (so the
    Pusher SDKs' 5-minute freshness check passes on a retry, after an outage and on a
    replay: their ``validate_webhook`` refuses older bodies), signed with the app's current
    secret (``X-Pusher-Signature``, hex HMAC-SHA256 of the body) and key (``X-Pusher-Key``), with
    the endpoint's custom ``headers`` (which cannot replace those two). A 2xx answer (a
    Lambda accepting the event) acknowledges the job. A network error, timeout, 5xx, 408,
    409, 425 or 429 raises :class:`Retry` after exponential back-off (``initial_backoff_ms``
    doubling up to ``max_backoff_ms``, or the endpoint's ``Retry-After``), until the retry
    window (``max_elapsed_time_ms`` from the job's first enqueue, 5 minutes) or
    ``max_attempts`` is spent; then, or at once for any other answer, or when retries are
    off, or the app no longer exists, it raises :class:`Reject` and the queue keeps the job
    in its dead letters. An unreachable app store means try again later. Each outcome is
    reported to ``observer``, if given, and each request to the console's ``tap``.
    """

    def __init__(
        self,
        app_manager: AppManager,
        config: WebhooksConfig,
        observer: DeliveryObserver | None = None,
        tap: Tap | None = None,
    ) -> None:
        self.app_manager = app_manager
        self.config = config
        self.observer = observer
        self.tap = tap
        self._http: httpx.AsyncClient | None = None
        self._lambda: LambdaTarget | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._lambda is not None:
            await self._lambda.close()
            self._lambda = None

    async def __call__(self, job: Job) -> None:
        app_id = str(job.payload.get("app_id"))
        try:
            await self._deliver(job, app_id)
        except Reject:
            if self.observer is not None:
                self.observer.webhook_dead_lettered(app_id)
            raise
        if self.observer is not None:
            self.observer.webhook_sent(app_id)

    async def _deliver(self, job: Job, app_id: str) -> None:
        payload = job.payload
        try:
            webhook = Webhook.model_validate(payload["target"])
            body = restamp(str(payload["body"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise Reject(f"not a webhook job: {exc}") from None
        policy = webhook.retry or self.config.retry
        try:
            app = await self.app_manager.find_by_id(app_id)
        except AppManagerUnavailable as exc:
            self._retry_or_give_up(job, policy, DeliveryFailed(str(exc), retryable=True))
        if app is None:
            raise Reject(f"app {app_id} no longer exists")
        target = redact_url(webhook.url) if webhook.url else "lambda"
        try:
            if webhook.url:
                status = await self._post(webhook, body, app.key, app.secret)
            elif webhook.lambda_function or (webhook.lambda_ and webhook.lambda_.function_name):
                await self._lambda_target().invoke(webhook, body)
                status = None
            else:
                raise Reject("the webhook has neither a url nor a lambda function")
        except DeliveryFailed as failure:
            if self.tap is not None and self.tap.active:
                self.tap.webhook(app_id, target, _events(body), None, failure.reason, job.attempts)
            log.warning(
                "webhook of app %s to %s failed (attempt %d): %s",
                app_id, target, job.attempts, failure.reason,
            )  # fmt: skip
            if self.observer is not None:
                self.observer.webhook_failed(app_id, failure.retryable)
            if not failure.retryable:
                raise Reject(failure.reason) from None
            self._retry_or_give_up(job, policy, failure)
        if self.tap is not None and self.tap.active:
            self.tap.webhook(app_id, target, _events(body), status, None, job.attempts)

    @staticmethod
    def _retry_or_give_up(job: Job, policy: WebhookRetry, failure: DeliveryFailed) -> NoReturn:
        """Raise ``Retry`` with the next back-off, or ``Reject`` when retries are spent."""
        attempts = job.attempts
        if not policy.enabled:
            raise Reject(f"{failure.reason} (retries are off)")
        if policy.max_attempts is not None and attempts >= policy.max_attempts:
            raise Reject(f"{failure.reason} (gave up after {attempts} attempts)")
        delay = policy.initial_backoff_ms * 2 ** max(0, attempts - 1) / 1000
        delay *= random.uniform(0.9, 1.1)
        if failure.retry_after is not None:
            delay = max(delay, failure.retry_after)
        delay = min(delay, policy.max_backoff_ms / 1000)
        elapsed = max(0.0, time.time() - job.enqueued_at)
        if elapsed + delay > policy.max_elapsed_time_ms / 1000:
            raise Reject(f"{failure.reason} (gave up after {attempts} attempts in {elapsed:.0f}s)")
        raise Retry(delay, failure.reason)

    async def _post(self, webhook: Webhook, body: bytes, key: str, secret: str) -> int:
        """POST the signed ``body``; its 2xx status, else ``DeliveryFailed``."""
        assert webhook.url is not None
        headers = {
            name: value
            for name, value in webhook.headers.items()
            if name.lower() not in SIGNED_HEADERS
        }
        headers.update(
            {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "X-Pusher-Key": key,
                "X-Pusher-Signature": sign_webhook(secret, body),
            }
        )
        timeout = (webhook.request_timeout_ms or self.config.request_timeout_ms) / 1000
        try:
            response = await self._client().post(
                webhook.url, content=body, headers=headers, timeout=timeout
            )
        except httpx.TimeoutException:
            raise DeliveryFailed(f"no answer within {timeout:g}s", retryable=True) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise DeliveryFailed(f"bad url: {exc}", retryable=False) from None
        except httpx.TransportError as exc:
            raise DeliveryFailed(f"network error: {exc!r}", retryable=True) from None
        status = response.status_code
        if 200 <= status < 300:
            return status
        retryable = status >= 500 or status in RETRY_STATUSES
        raise DeliveryFailed(
            f"HTTP {status}",
            retryable=retryable,
            retry_after=_retry_after(response.headers.get("retry-after")),
        )

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            limits = httpx.Limits(
                max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
            )
            self._http = httpx.AsyncClient(limits=limits, follow_redirects=False)
        return self._http

    def _lambda_target(self) -> LambdaTarget:
        if self._lambda is None:
            from .lambda_target import LambdaTarget

            self._lambda = LambdaTarget()
        return self._lambda


def restamp(body: str) -> bytes:
    """``body`` with ``time_ms`` now."""
    data = orjson.loads(body)
    data["time_ms"] = int(time.time() * 1000)
    return orjson.dumps(data)


def _events(body: bytes) -> list[tuple[str, str]]:
    """(name, channel) of each event of a webhook ``body`` (for the console)."""
    return [
        (str(event.get("name")), str(event.get("channel") or ""))
        for event in orjson.loads(body).get("events", [])
    ]


def _retry_after(value: str | None) -> float | None:
    """Seconds of a ``Retry-After`` header given in seconds (HTTP dates are ignored)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
