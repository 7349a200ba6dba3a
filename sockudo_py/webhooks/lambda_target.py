"""AWS Lambda as a webhook target: the Pusher webhook body is the payload of an asynchronous
(``InvocationType="Event"``) invocation, as Sockudo does.

Needs ``aioboto3`` (``pip install 'sockudo-py[aws]'``), imported on first use only, so the
server starts without it when no app has a Lambda webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from ..config import Webhook
from .failure import DeliveryFailed

DEFAULT_REGION = "us-east-1"
SUCCESS_STATUS = frozenset({200, 202, 204})
"""Invoke's ``StatusCode`` on success: 202 for ``Event`` (200 ``RequestResponse``, 204
``DryRun``, accepted in case a proxy or emulator answers that way)."""

RETRYABLE_CODES = frozenset(
    {
        "TooManyRequestsException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "ServiceException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalServerError",
        "ResourceConflictException",  # the function is being created or updated
        "ResourceNotReadyException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
"""Lambda error codes a later attempt may get past (besides any 5xx, 408, 409, 425, 429)."""
RETRYABLE_STATUS = frozenset({408, 409, 425, 429})

_INSTALL_HINT = "a Lambda webhook needs aioboto3: pip install 'sockudo-py[aws]'"

ClientKey = tuple[str, str | None, str | None, str | None, str | None]
"""(region, endpoint URL, access key id, secret access key, session token)."""


def _aioboto3() -> Any:
    try:
        import aioboto3
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return aioboto3


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    return None


def function_name(webhook: Webhook) -> str | None:
    """The Lambda function a webhook invokes: ``lambda.function_name``, else the legacy
    ``lambda_function`` (a name, an ARN or ``name:alias``); ``None`` when it has neither."""
    if webhook.lambda_ is not None and webhook.lambda_.function_name:
        return webhook.lambda_.function_name
    return webhook.lambda_function or None


def client_key(webhook: Webhook) -> ClientKey:
    """Where and as whom a webhook's Lambda is invoked.

    Region: ``lambda.client_options.region``, else ``lambda.region`` (soketi spreads its
    ``client_options`` over ``{region}``), else us-east-1. Endpoint:
    ``client_options.endpoint`` (soketi, AWS SDK v2; a string or ``{href}``) or
    ``endpoint_url``, else ``None`` (AWS's endpoint of the region, or ``AWS_ENDPOINT_URL_LAMBDA``
    / ``AWS_ENDPOINT_URL``). Credentials: ``client_options.credentials`` ``{accessKeyId,
    secretAccessKey, sessionToken}`` (or the same keys at the top of ``client_options``),
    else ``None`` (the AWS default chain)."""
    lam = webhook.lambda_
    options: Mapping[str, Any] = lam.client_options if lam is not None else {}
    region = _text(options.get("region")) or (lam.region if lam is not None else None)
    endpoint = options.get("endpoint")
    if isinstance(endpoint, Mapping):
        endpoint = endpoint.get("href")
    endpoint = _text(endpoint) or _text(options.get("endpoint_url"))
    raw_credentials = options.get("credentials")
    creds: Mapping[str, Any] = raw_credentials if isinstance(raw_credentials, Mapping) else options
    key_id = _text(creds.get("accessKeyId")) or _text(creds.get("aws_access_key_id"))
    secret = _text(creds.get("secretAccessKey")) or _text(creds.get("aws_secret_access_key"))
    token = _text(creds.get("sessionToken")) or _text(creds.get("aws_session_token"))
    if key_id is None or secret is None:
        key_id = secret = token = None
    return (region or DEFAULT_REGION, endpoint, key_id, secret, token)


def failure_from(exc: BaseException, *, secrets: tuple[str | None, ...] = ()) -> DeliveryFailed:
    """The :class:`DeliveryFailed` an exception of an invoke attempt means.

    Retryable: timeouts, network and other transport errors (botocore ``BotoCoreError``s but
    the ones below, ``OSError``), throttling (``TooManyRequestsException``, 429; its
    ``Retry-After`` / ``retryAfterSeconds`` kept), ``ServiceException`` and any 5xx, and the
    codes of :data:`RETRYABLE_CODES`, 408, 409, 425. Permanent: every other client error
    (``ResourceNotFoundException``, ``AccessDenied...``, ``InvalidParameterValueException``,
    any other 4xx), missing credentials and invalid parameters. ``secrets`` are blanked out of
    the reason (credentials never reach a log line or a dead letter)."""
    failure = _classify(exc)
    reason = failure.reason
    for secret in secrets:
        if secret:
            reason = reason.replace(secret, "***")
    if reason != failure.reason:
        failure = DeliveryFailed(
            reason, retryable=failure.retryable, retry_after=failure.retry_after
        )
    return failure


def _classify(exc: BaseException) -> DeliveryFailed:
    if isinstance(exc, TimeoutError):
        return DeliveryFailed("lambda invoke timed out", retryable=True)
    try:
        from botocore import exceptions as boto_errors
    except ImportError:  # pragma: no cover - botocore comes with aioboto3
        return _generic_failure(exc)
    if isinstance(exc, boto_errors.ClientError):
        return _client_failure(exc.response)
    if isinstance(
        exc,
        boto_errors.NoCredentialsError
        | boto_errors.PartialCredentialsError
        | boto_errors.ParamValidationError
        | boto_errors.NoRegionError
        | boto_errors.UnknownEndpointError,
    ):
        return DeliveryFailed(f"lambda invoke refused: {_describe(exc)}", retryable=False)
    if isinstance(exc, boto_errors.BotoCoreError):
        return DeliveryFailed(f"lambda invoke failed: {_describe(exc)}", retryable=True)
    return _generic_failure(exc)


def _generic_failure(exc: BaseException) -> DeliveryFailed:
    return DeliveryFailed(
        f"lambda invoke failed: {_describe(exc)}", retryable=isinstance(exc, OSError)
    )


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _client_failure(response: Mapping[str, Any]) -> DeliveryFailed:
    error = response.get("Error") or {}
    meta = response.get("ResponseMetadata") or {}
    code = str(error.get("Code") or "")
    message = str(error.get("Message") or "")
    status = meta.get("HTTPStatusCode")
    status = status if isinstance(status, int) else 0
    retryable = (
        code in RETRYABLE_CODES or status >= 500 or status in RETRYABLE_STATUS or "Throttl" in code
    )
    retry_after = _retry_after(response, meta) if retryable else None
    label = code or "error"
    reason = f"lambda {label} (HTTP {status})" if status else f"lambda {label}"
    if message:
        reason = f"{reason}: {message}"
    return DeliveryFailed(reason[:500], retryable=retryable, retry_after=retry_after)


def _retry_after(response: Mapping[str, Any], meta: Mapping[str, Any]) -> float | None:
    headers = meta.get("HTTPHeaders") or {}
    candidates: tuple[Any, ...] = (response.get("retryAfterSeconds"), headers.get("retry-after"))
    for value in candidates:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            continue
        if seconds >= 0:
            return seconds
    return None


class LambdaTarget:
    """Delivers webhook bodies to AWS Lambda functions (or an emulator of the Lambda API).

    Contract:

    * :meth:`invoke` makes one attempt: ``Invoke`` of :func:`function_name` with
      ``InvocationType="Event"`` (asynchronous: Lambda queues the event and answers 202; the
      function's own outcome is not ours to see) and ``Payload`` = ``body``, the exact bytes
      of the Pusher webhook body. Region, endpoint and credentials: :func:`client_key`. It
      returns on ``StatusCode`` 202 (or 200/204) and raises :class:`DeliveryFailed` otherwise
      (:func:`failure_from` says which failures are retryable); botocore's own retries are
      off, the caller's queue owns the retry policy. The attempt is bounded by the webhook's
      ``request_timeout_ms``, else by ``timeout`` (seconds).
    * A client is created on first use of a (region, endpoint, credentials) and reused by
      every later invoke with the same ones, concurrently too. :meth:`close` closes them all;
      the target stays usable (new clients are made on demand).
    * Without aioboto3, :meth:`invoke` raises :class:`ImportError` naming
      ``pip install 'sockudo-py[aws]'``; importing this module never needs it.
    * A reason never holds credentials.
    """

    def __init__(self, *, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._clients: dict[ClientKey, Any] = {}
        self._stack = contextlib.AsyncExitStack()
        self._lock = asyncio.Lock()

    async def invoke(self, webhook: Webhook, body: bytes) -> None:
        name = function_name(webhook)
        if not name:
            raise DeliveryFailed(
                "webhook has no Lambda function (lambda.function_name or lambda_function)",
                retryable=False,
            )
        key = client_key(webhook)
        secrets = (key[3], key[4])
        timeout = webhook.request_timeout_ms / 1000 if webhook.request_timeout_ms else self.timeout
        try:
            async with asyncio.timeout(timeout):
                client = await self._client(key)
                answer = await client.invoke(
                    FunctionName=name, InvocationType="Event", Payload=body
                )
                payload = answer.get("Payload")
                if payload is not None:  # release the connection to the pool
                    async with payload as stream:
                        await stream.read()
        except ImportError:
            raise
        except DeliveryFailed:
            raise
        except Exception as exc:
            raise failure_from(exc, secrets=secrets) from None
        status = answer.get("StatusCode")
        if status not in SUCCESS_STATUS:
            retryable = not isinstance(status, int) or status >= 500 or status in RETRYABLE_STATUS
            raise DeliveryFailed(f"lambda invoke answered StatusCode {status}", retryable=retryable)

    async def _client(self, key: ClientKey) -> Any:
        client = self._clients.get(key)
        if client is not None:
            return client
        async with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = await self._create(key)
                self._clients[key] = client
            return client

    async def _create(self, key: ClientKey) -> Any:
        aioboto3 = _aioboto3()
        from botocore.config import Config as BotoConfig

        region, endpoint, key_id, secret, token = key
        if key_id and secret:
            session = aioboto3.Session(
                aws_access_key_id=key_id,
                aws_secret_access_key=secret,
                aws_session_token=token,
                region_name=region,
            )
        else:
            session = aioboto3.Session(region_name=region)
        config = BotoConfig(
            connect_timeout=min(self.timeout, 10.0),
            read_timeout=max(self.timeout, 60.0),
            retries={"total_max_attempts": 1, "mode": "standard"},
        )
        return await self._stack.enter_async_context(
            session.client("lambda", region_name=region, endpoint_url=endpoint, config=config)
        )

    async def close(self) -> None:
        """Close every client (idempotent)."""
        async with self._lock:
            stack, self._stack = self._stack, contextlib.AsyncExitStack()
            self._clients.clear()
            await stack.aclose()
