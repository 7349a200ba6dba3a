"""The Lambda webhook target (sockudo_py/webhooks/lambda_target.py) against moto's server mode
(the session moto server, dummy credentials only, never AWS). How moto runs Lambda without
Docker and lets us see the invocations: tests/moto_lambda.py."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from moto_lambda import create_function, lambda_backend, record_lambda_invocations
from moto_server import MOTO_CREDENTIALS, MotoServer

import sockudo_py.webhooks.lambda_target as lambda_target
from sockudo_py.config import Webhook
from sockudo_py.webhooks.failure import DeliveryFailed
from sockudo_py.webhooks.lambda_target import LambdaTarget, client_key, failure_from

pytestmark = pytest.mark.timeout(60)

# the exact bytes, with JSON's escapes and spacing as the sender wrote them
BODY = b'{"time_ms":1700000000000, "events":[{"name":"channel_occupied","channel":"\\u00e9-x"}]}'
CREDENTIALS = {
    "accessKeyId": MOTO_CREDENTIALS["aws_access_key_id"],
    "secretAccessKey": MOTO_CREDENTIALS["aws_secret_access_key"],
}


def lambda_webhook(name: str, endpoint: str, **options: Any) -> Webhook:
    return Webhook.model_validate(
        {
            "lambda": {
                "function_name": name,
                "region": MOTO_CREDENTIALS["region"],
                "client_options": {"endpoint": endpoint, "credentials": CREDENTIALS, **options},
            },
            "event_types": ["channel_occupied"],
        }
    )


@pytest.fixture(scope="module")
def simple_lambda(moto_server: MotoServer) -> Iterator[MotoServer]:
    """The session moto server with its Docker-free Lambda backend for this module."""
    with lambda_backend(moto_server, simple=True):
        yield moto_server


@pytest.fixture
def function(simple_lambda: MotoServer) -> str:
    name = f"webhook-{uuid.uuid4().hex[:10]}"
    create_function(simple_lambda, name)
    return name


@pytest.fixture
async def target() -> AsyncIterator[LambdaTarget]:
    target = LambdaTarget(timeout=5)
    yield target
    await target.close()


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --------------------------------------------------------------------------- against moto


async def test_event_invocation_carries_the_exact_body(
    simple_lambda: MotoServer, function: str, target: LambdaTarget
) -> None:
    webhook = lambda_webhook(function, simple_lambda.url)
    with record_lambda_invocations(simple_lambda) as recording:
        await target.invoke(webhook, BODY)
        [seen] = recording.invocations(function)
    assert seen.invocation_type == "Event"
    assert seen.payload == BODY
    assert seen.region == "us-east-1"
    assert seen.access_key_id == CREDENTIALS["accessKeyId"]
    assert seen.session_token is None


async def test_client_options_region_and_session_token(
    simple_lambda: MotoServer, target: LambdaTarget
) -> None:
    name = f"webhook-{uuid.uuid4().hex[:10]}"
    arn = create_function(simple_lambda, name, region="eu-west-1")
    credentials = {**CREDENTIALS, "accessKeyId": "AKIDSOCKUDOTEST", "sessionToken": "tok-123"}
    webhook = Webhook.model_validate(
        {
            "lambda_function": arn,
            "lambda": {
                "client_options": {
                    "endpoint_url": simple_lambda.url,
                    "region": "eu-west-1",
                    "credentials": credentials,
                }
            },
        }
    )
    with record_lambda_invocations(simple_lambda) as recording:
        await target.invoke(webhook, BODY)
        [seen] = recording.invocations(arn)
    assert (seen.region, seen.access_key_id, seen.session_token) == (
        "eu-west-1",
        "AKIDSOCKUDOTEST",
        "tok-123",
    )
    assert seen.payload == BODY


async def test_default_chain_honours_endpoint_env(
    simple_lambda: MotoServer,
    function: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", simple_lambda.url)
    target = LambdaTarget(timeout=5)
    try:
        with record_lambda_invocations(simple_lambda) as recording:
            await target.invoke(Webhook.model_validate({"lambda_function": function}), BODY)
            [seen] = recording.invocations(function)
    finally:
        await target.close()
    assert (seen.invocation_type, seen.access_key_id, seen.payload) == (
        "Event",
        "AKIDFROMENV",
        BODY,
    )


async def test_clients_are_reused_per_region_endpoint_and_credentials(
    simple_lambda: MotoServer, function: str
) -> None:
    target = LambdaTarget(timeout=5)
    webhook = lambda_webhook(function, simple_lambda.url)
    other = lambda_webhook(function, simple_lambda.url + "/")
    await asyncio.gather(*(target.invoke(webhook, BODY) for _ in range(5)))
    await target.invoke(other, BODY)
    assert len(target._clients) == 2
    await target.close()
    assert target._clients == {}
    await target.close()  # idempotent
    await target.invoke(webhook, BODY)  # usable again: a new client
    assert len(target._clients) == 1
    await target.close()


async def test_unknown_function_is_permanent(
    simple_lambda: MotoServer, target: LambdaTarget
) -> None:
    # The simple backend accepts any name: use moto's default backend, which looks it up
    # (and answers 404 before it would need Docker).
    webhook = lambda_webhook("no-such-function", simple_lambda.url)
    with lambda_backend(simple_lambda, simple=False), pytest.raises(DeliveryFailed) as failed:
        await target.invoke(webhook, BODY)
    assert failed.value.retryable is False
    assert "ResourceNotFoundException" in failed.value.reason
    assert "404" in failed.value.reason


async def test_unreachable_endpoint_is_retryable(target: LambdaTarget) -> None:
    webhook = lambda_webhook("fn", f"http://127.0.0.1:{closed_port()}")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DeliveryFailed) as failed:
        await target.invoke(webhook, BODY)
    assert failed.value.retryable is True
    assert loop.time() - started < 5  # no botocore retries behind the queue's back


async def test_silent_endpoint_times_out_retryable(target: LambdaTarget) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # never answer

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    webhook = lambda_webhook("fn", f"http://127.0.0.1:{port}", region="us-east-1")
    webhook = webhook.model_copy(update={"request_timeout_ms": 300})
    try:
        with pytest.raises(DeliveryFailed) as failed:
            await target.invoke(webhook, BODY)
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
    assert failed.value.retryable is True
    assert "timed out" in failed.value.reason


async def test_webhook_without_function_is_permanent(target: LambdaTarget) -> None:
    with pytest.raises(DeliveryFailed) as failed:
        await target.invoke(Webhook.model_validate({"lambda": {"region": "eu-west-1"}}), BODY)
    assert failed.value.retryable is False


# --------------------------------------------------------------------------- pure parts


def client_error(code: str, status: int, **extra: Any) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": f"{code} happened"},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}},
        **extra,
    }
    return ClientError(response, "Invoke")


@pytest.mark.parametrize(
    ("code", "status", "retryable"),
    [
        ("TooManyRequestsException", 429, True),
        ("ThrottlingException", 400, True),
        ("ServiceException", 500, True),
        ("EC2UnexpectedException", 502, True),
        ("ResourceConflictException", 409, True),
        ("SomethingNew", 503, True),
        ("ResourceNotFoundException", 404, False),
        ("AccessDeniedException", 403, False),
        ("AccessDenied", 403, False),
        ("InvalidParameterValueException", 400, False),
        ("RequestTooLargeException", 413, False),
        ("UnrecognizedClientException", 403, False),
    ],
)
def test_client_error_classification(code: str, status: int, retryable: bool) -> None:
    failure = failure_from(client_error(code, status))
    assert failure.retryable is retryable
    assert code in failure.reason


def test_throttling_keeps_retry_after() -> None:
    failure = failure_from(client_error("TooManyRequestsException", 429, retryAfterSeconds="7"))
    assert (failure.retryable, failure.retry_after) == (True, 7.0)


def test_transport_and_credential_errors() -> None:
    assert failure_from(EndpointConnectionError(endpoint_url="http://x")).retryable is True
    assert failure_from(TimeoutError()).retryable is True
    assert failure_from(ConnectionResetError()).retryable is True
    assert failure_from(NoCredentialsError()).retryable is False


def test_secrets_never_in_the_reason() -> None:
    error = client_error("AccessDeniedException", 403)
    error.response["Error"]["Message"] = "bad signature for wJalrXUtnFEMI/K7MDENG and tok-9"
    failure = failure_from(error, secrets=("wJalrXUtnFEMI/K7MDENG", "tok-9", None))
    assert "wJalrXUtnFEMI" not in failure.reason
    assert "tok-9" not in failure.reason
    assert failure.retryable is False


def test_client_key_mapping() -> None:
    legacy = Webhook.model_validate({"lambda_function": "fn"})
    assert client_key(legacy) == ("us-east-1", None, None, None, None)
    soketi = Webhook.model_validate(
        {
            "lambda": {
                "async": True,
                "region": "eu-central-1",
                "client_options": {
                    "endpoint": {"href": "http://localhost:4566/"},
                    "accessKeyId": "AK",
                    "secretAccessKey": "SK",
                },
            }
        }
    )
    assert client_key(soketi) == ("eu-central-1", "http://localhost:4566/", "AK", "SK", None)
    partial = Webhook.model_validate(
        {"lambda": {"function_name": "f", "client_options": {"credentials": {"accessKeyId": "AK"}}}}
    )
    assert client_key(partial) == ("us-east-1", None, None, None, None)  # default chain


async def test_without_aioboto3_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for module in ("aioboto3", "aiobotocore", "boto3", "botocore"):
        monkeypatch.setitem(sys.modules, module, None)
    # the module itself imports without them
    spec = importlib.util.spec_from_file_location(
        "sockudo_py.webhooks._lambda_target_fresh", lambda_target.__file__
    )
    assert spec is not None and spec.loader is not None
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    target = fresh.LambdaTarget()
    with pytest.raises(ImportError, match=r"pip install 'sockudo-py\[aws\]'"):
        await target.invoke(Webhook.model_validate({"lambda_function": "fn"}), BODY)
    await target.close()
