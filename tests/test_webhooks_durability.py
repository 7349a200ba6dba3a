"""Webhooks survive the server: real sockudo-py processes, a real HTTP receiver
(tests/webhook_receiver.py), durable queues (Redis on 127.0.0.1:6379, SQS in moto's server
mode) and Lambda in moto.

* SIGKILL with webhooks pending (redis, sqs): the receiver answers 503, so the jobs stay
  queued and retrying; once every event was attempted at least once the server is killed,
  the receiver switched to 200 and a new server started on the same queue: every event
  arrives exactly once (the dead server never had a job acknowledged, so nothing may come
  twice), signed with the app's secret.
* SIGTERM while ``channel_vacated`` is in its 3 s hold, with the receiver down: the process
  exits within its grace period, the event waits in the queue and a new server delivers it,
  once, when the receiver is back.
* Lambda target: a subscription makes the function receive an ``Event`` invocation whose
  payload is the webhook body (``{time_ms, events: [channel_occupied]}``).

A missing Redis or moto is a failure, never a skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from interop_server import DEFAULT_APP, RunningServer, ServerFactory
from moto_lambda import boto_client, create_function, lambda_backend, record_lambda_invocations
from moto_server import MOTO_CREDENTIALS, MotoServer
from pusher_ws import PusherWs, api, close_all
from redis_cluster import delete_keys
from webhook_receiver import EVENT_TYPES, Received, WebhookReceiver

pytestmark = pytest.mark.timeout(60)

REDIS_URL = "redis://127.0.0.1:6379/0"
RELIABILITY = {
    "lease_duration_ms": 1500,
    "lease_renew_interval_ms": 300,
    "worker_poll_interval_ms": 50,
    "shutdown_timeout_ms": 1000,
}
GRACE_PERIOD = 3  # shutdown_grace_period (s) of the SIGTERM test


def app_with_webhook(url: str) -> dict[str, Any]:
    webhook = {
        "url": url,
        "event_types": EVENT_TYPES,
        # short back-off, long window: jobs keep retrying for the whole test
        "retry": {"initial_backoff_ms": 100, "max_backoff_ms": 300, "max_elapsed_time_ms": 60_000},
        "request_timeout_ms": 2000,
    }
    return {**DEFAULT_APP, "webhooks": [webhook]}


def redis_queue_config(prefix: str) -> dict[str, Any]:
    return {
        "queue": {"driver": "redis", "redis": {"prefix": prefix}, "reliability": RELIABILITY},
        "database": {"redis": {"url": REDIS_URL}},
    }


def identity(event: dict[str, Any]) -> str:
    """An event as a comparable value (every field counts)."""
    return json.dumps(event, sort_keys=True)


def events_of(requests: list[Received]) -> list[dict[str, Any]]:
    return [event for r in requests for event in r.events]


def kill(server: RunningServer) -> None:
    """SIGKILL by PID and reap it."""
    os.kill(server.pid, signal.SIGKILL)
    server.process.wait(timeout=5)


def assert_signed(receiver: WebhookReceiver, app: dict[str, Any]) -> None:
    requests = receiver.received()
    assert requests, "no webhook request at all"
    for r in requests:
        assert r.headers.get("x-pusher-key") == app["key"], r
        assert r.signed_by(app["secret"]), f"bad signature: {r}"
        assert r.headers.get("content-type") == "application/json", r


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A unique queue prefix; its keys are deleted afterwards."""
    prefix = f"test-webhooks-{uuid.uuid4().hex[:10]}:"
    yield prefix
    await delete_keys(prefix)


async def redis_queue_sizes(prefix: str) -> dict[str, int]:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        return {
            part: int(await client.zcard(f"{prefix}{{webhooks}}:{part}"))
            for part in ("pending", "leased", "dead")
        }
    finally:
        await client.aclose()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


# --------------------------------------------------------------------------- SIGKILL


async def produce_events(server: RunningServer, tag: str) -> tuple[list[PusherWs], list[str]]:
    """Two sockets make occupied, member_added and client events; the sockets and the
    identities of every event that must reach the endpoint."""
    app = server.app
    presence, private = f"presence-dur-{tag}", f"private-dur-{tag}"
    first = await PusherWs.connect(server, app["key"], app["secret"])
    second = await PusherWs.connect(server, app["key"], app["secret"])
    await first.subscribe_presence(presence, "u1")
    await second.subscribe_presence(presence, "u2")
    await second.subscribe(private)
    await first.send("client-ping", {"n": 1}, presence)
    await second.send("client-pong", "text", private)
    await second.expect("client-ping", presence)  # the server has taken the client event
    expected = [
        {"name": "channel_occupied", "channel": presence},
        {"name": "member_added", "channel": presence, "user_id": "u1"},
        {"name": "member_added", "channel": presence, "user_id": "u2"},
        {"name": "channel_occupied", "channel": private},
        {"name": "client_event", "channel": presence, "event": "client-ping",
         "data": '{"n":1}', "socket_id": first.socket_id, "user_id": "u1"},
        {"name": "client_event", "channel": private, "event": "client-pong",
         "data": "text", "socket_id": second.socket_id},
    ]  # fmt: skip
    return [first, second], [identity(e) for e in expected]


async def check_sigkill_loses_nothing(
    factory: ServerFactory, receiver: WebhookReceiver, queue_config: dict[str, Any]
) -> None:
    receiver.script("/hook", [503])
    app = app_with_webhook(receiver.url("/hook"))
    doomed = factory(queue_config, apps=[app])
    clients, expected = await produce_events(doomed, uuid.uuid4().hex[:8])
    want = set(expected)
    try:
        # every event was queued and attempted (answered 503) at least once
        await receiver.wait_for(
            lambda: want <= {identity(e) for e in events_of(receiver.received(status=503))},
            timeout=15,
            what="a failed attempt of every event",
        )
        kill(doomed)
    finally:
        await close_all(*clients)
    await asyncio.sleep(0.3)  # a request the dead server had sent is answered 503 by now
    assert receiver.received(status=200) == []
    failed_before = len(receiver.received())
    receiver.script("/hook", [200])

    successor = factory(queue_config, apps=[app])
    await receiver.wait_for(
        lambda: want <= {identity(e) for e in receiver.events("/hook")},
        timeout=15,
        what=f"every event delivered after the restart ({successor.output()[-2000:]})",
    )
    await asyncio.sleep(2.0)  # past a lease (1.5 s) or visibility (2 s): a duplicate shows now
    delivered = Counter(identity(e) for e in receiver.events("/hook"))
    assert delivered == Counter(expected), (delivered, expected)
    assert failed_before >= 1
    assert_signed(receiver, app)
    assert successor.process.poll() is None


async def test_sigkill_with_webhooks_pending_redis(
    sockudo_server_factory: ServerFactory, receiver: WebhookReceiver, redis_prefix: str
) -> None:
    await check_sigkill_loses_nothing(
        sockudo_server_factory, receiver, redis_queue_config(redis_prefix)
    )
    assert await redis_queue_sizes(redis_prefix) == {"pending": 0, "leased": 0, "dead": 0}


@pytest.fixture
def sqs_queue_config(moto_server: MotoServer) -> Iterator[dict[str, Any]]:
    """Queues of our own in moto (``<tag>-webhooks`` and its dead letters), named through
    ``queue_url_prefix``; deleted afterwards."""
    sqs = boto_client(moto_server, "sqs")
    tag = f"wh-{uuid.uuid4().hex[:10]}-"
    urls = [
        sqs.create_queue(QueueName=f"{tag}{name}", Attributes={"VisibilityTimeout": "2"})[
            "QueueUrl"
        ]
        for name in ("webhooks", "webhooks-dead-letters")
    ]
    section = {
        **MOTO_CREDENTIALS,
        "endpoint_url": moto_server.url,
        "queue_url_prefix": urls[0].removesuffix("webhooks"),
        "visibility_timeout": 2,
        "wait_time_seconds": 1,
    }
    yield {"queue": {"driver": "sqs", "sqs": section, "reliability": RELIABILITY}}
    for url in urls:
        with contextlib.suppress(Exception):
            sqs.delete_queue(QueueUrl=url)


def sqs_message_counts(moto_server: MotoServer, queue_url: str) -> tuple[int, int]:
    attributes = boto_client(moto_server, "sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


async def test_sigkill_with_webhooks_pending_sqs(
    sockudo_server_factory: ServerFactory,
    receiver: WebhookReceiver,
    moto_server: MotoServer,
    sqs_queue_config: dict[str, Any],
) -> None:
    await check_sigkill_loses_nothing(sockudo_server_factory, receiver, sqs_queue_config)
    prefix = sqs_queue_config["queue"]["sqs"]["queue_url_prefix"]
    assert sqs_message_counts(moto_server, f"{prefix}webhooks") == (0, 0)
    assert sqs_message_counts(moto_server, f"{prefix}webhooks-dead-letters") == (0, 0)


# --------------------------------------------------------------------------- SIGTERM


async def occupied(server: RunningServer, channel: str) -> bool:
    app = server.app
    resp = await api(server, app, "GET", f"/apps/{app['id']}/channels/{channel}")
    assert resp.status_code == 200, resp.text
    return bool(resp.json()["occupied"])


async def test_sigterm_queues_the_held_vacated_event(
    sockudo_server_factory: ServerFactory, receiver: WebhookReceiver, redis_prefix: str
) -> None:
    app = app_with_webhook(receiver.url("/hook"))
    config = {**redis_queue_config(redis_prefix), "shutdown_grace_period": GRACE_PERIOD}
    first = sockudo_server_factory(config, apps=[app])
    channel = f"dur-vacated-{uuid.uuid4().hex[:8]}"
    occupied_event = {"name": "channel_occupied", "channel": channel}
    vacated_event = {"name": "channel_vacated", "channel": channel}
    client = await PusherWs.connect(first, app["key"], app["secret"])
    try:
        await client.subscribe(channel)
        await receiver.wait_events(1, "/hook")
        receiver.stop()  # the endpoint is down: connections refused
        await client.unsubscribe(channel)
        while await occupied(first, channel):
            await asyncio.sleep(0.02)
        left_at = time.monotonic()
        first.process.send_signal(signal.SIGTERM)
        assert time.monotonic() - left_at < 1.0  # the vacated event is in its 3 s hold
        try:
            code = first.process.wait(timeout=GRACE_PERIOD)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {GRACE_PERIOD} s after SIGTERM:\n{first.output()}")
        stopped_in = time.monotonic() - left_at
    finally:
        await client.close()
    assert code in (0, -signal.SIGTERM), first.output()  # uvicorn re-raises the SIGTERM
    assert stopped_in < 3.0, "the hold was waited for instead of queued at once"
    sizes = await redis_queue_sizes(redis_prefix)
    assert sizes["pending"] + sizes["leased"] == 1 and sizes["dead"] == 0, sizes
    assert receiver.events("/hook") == [occupied_event]

    second = sockudo_server_factory(config, apps=[app])
    await asyncio.sleep(1.0)  # it tries meanwhile: refused, retried
    receiver.start()  # back up, same port
    await receiver.wait_events(2, "/hook", timeout=10)
    await asyncio.sleep(1.0)
    assert receiver.events("/hook") == [occupied_event, vacated_event], second.output()
    assert_signed(receiver, app)
    assert await redis_queue_sizes(redis_prefix) == {"pending": 0, "leased": 0, "dead": 0}


# --------------------------------------------------------------------------- Lambda


async def test_lambda_target_receives_the_webhook_body(
    sockudo_server_factory: ServerFactory, moto_server: MotoServer
) -> None:
    function = f"sockudo-webhook-{uuid.uuid4().hex[:10]}"
    channel = f"lambda-{uuid.uuid4().hex[:8]}"
    webhook = {
        "lambda": {
            "function_name": function,
            "region": MOTO_CREDENTIALS["region"],
            "client_options": {
                "endpoint": moto_server.url,
                "credentials": {
                    "accessKeyId": MOTO_CREDENTIALS["aws_access_key_id"],
                    "secretAccessKey": MOTO_CREDENTIALS["aws_secret_access_key"],
                },
            },
        },
        "event_types": ["channel_occupied"],
    }
    app = {**DEFAULT_APP, "webhooks": [webhook]}
    with lambda_backend(moto_server, simple=True), record_lambda_invocations(moto_server) as rec:
        create_function(moto_server, function)
        server = sockudo_server_factory({"queue": {"driver": "memory"}}, apps=[app])
        async with await PusherWs.connect(server, app["key"], app["secret"]) as client:
            await client.subscribe(channel)
            found = await rec.wait_for(1, function_name=function, timeout=15)
            await asyncio.sleep(0.5)
            found = rec.invocations(function)
    assert len(found) == 1, found
    invocation = found[0]
    assert invocation.invocation_type == "Event"
    assert invocation.region == MOTO_CREDENTIALS["region"]
    assert invocation.access_key_id == MOTO_CREDENTIALS["aws_access_key_id"]
    body = json.loads(invocation.payload)
    assert set(body) == {"time_ms", "events"}
    assert isinstance(body["time_ms"], int) and abs(body["time_ms"] / 1000 - time.time()) < 30
    assert body["events"] == [{"name": "channel_occupied", "channel": channel}]
