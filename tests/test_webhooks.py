"""Webhooks end to end: a real server process, real sockets, a real HTTP receiver.

Every event kind with its body and signature (checked with the PyPI ``pusher`` SDK's own
``validate_webhook``), per-webhook event types, filters and headers, the 3 s hold, batching,
and delivery failures: 500 then 200, 404, a receiver that is down until its job is
dead-lettered and replayed with ``sockudo-py webhooks replay``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pusher
import pytest
from interop_server import RunningServer, ServerFactory, free_port
from pusher_ws import PusherWs, close_all, publish
from redis_cluster import delete_keys, start_redis_server
from webhook_receiver import Received, WebhookReceiver

ALL_EVENTS = [
    "channel_occupied", "channel_vacated", "member_added", "member_removed",
    "client_event", "cache_miss", "subscription_count",
]  # fmt: skip
FAST_RETRY = {"initial_backoff_ms": 200, "max_backoff_ms": 400, "max_elapsed_time_ms": 1500}
HOLD = 3.0


def app(app_id: str, webhooks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": app_id, "key": f"{app_id}-key", "secret": f"{app_id}-secret",
            "enable_client_messages": True, "webhooks": webhooks}  # fmt: skip


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


@pytest.fixture(scope="module")
def server(
    receiver: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    apps = [
        app("hooks", [
            {"url": receiver.url("/all"), "event_types": ALL_EVENTS},
            {"url": receiver.url("/private"), "event_types": ["client_event", "channel_occupied"],
             "filter": {"channel_name_starts_with": "private-"},
             "headers": {"X-Team": "blue", "Authorization": "Bearer t0k3n"}},
            {"url": receiver.url("/cache"), "event_types": ["cache_miss"],
             "filter": {"channel_name_ends_with": "-feed"}},
        ]),
        app("flaky", [{"url": receiver.url("/flaky"), "event_types": ["channel_occupied"],
                       "retry": FAST_RETRY}]),
        app("gone", [{"url": receiver.url("/gone"), "event_types": ["channel_occupied"],
                      "retry": FAST_RETRY}]),
        app("quiet", []),
    ]  # fmt: skip
    with ServerFactory(tmp_path_factory.mktemp("webhooks")) as factory:
        yield factory(apps=apps)


def app_of(server: RunningServer, app_id: str) -> dict[str, Any]:
    return next(a for a in server.apps if a["id"] == app_id)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def connect(server: RunningServer, app_id: str) -> PusherWs:
    the_app = app_of(server, app_id)
    return await PusherWs.connect(server, the_app["key"], the_app["secret"])


def about(receiver: WebhookReceiver, path: str, *channels: str) -> list[dict[str, Any]]:
    """Delivered events to ``path`` on ``channels``, in order."""
    return [e for e in receiver.events(path) if e["channel"] in channels]


def names(events: list[dict[str, Any]]) -> list[str]:
    return [e["name"] for e in events]


def validated(received: Received, the_app: dict[str, Any]) -> Any:
    """The body as the Pusher SDK's ``validate_webhook`` reads it (None if it refuses)."""
    client = pusher.Pusher("1", the_app["key"], the_app["secret"])  # (the id is not used)
    return client.validate_webhook(
        received.headers.get("x-pusher-key", ""),
        received.headers.get("x-pusher-signature", ""),
        received.body.decode(),
    )


async def test_every_event_kind_arrives_signed_as_the_pusher_sdk_expects(
    server: RunningServer, receiver: WebhookReceiver
) -> None:
    public, cache = unique("public"), unique("cache")
    presence, private = unique("presence"), unique("private")
    channels = (public, cache, presence, private)
    alice, bob = await connect(server, "hooks"), await connect(server, "hooks")
    await alice.subscribe(public)
    await alice.subscribe(cache)
    await alice.subscribe_presence(presence, "u-alice")
    await bob.subscribe_presence(presence, "u-bob", {"name": "Bob"})
    await alice.subscribe(private)
    await bob.subscribe(private)
    await bob.send("client-hello", {"n": 1}, channel=presence)
    await alice.send("client-psst", "text", channel=private)
    await receiver.wait_for(lambda: len(about(receiver, "/all", *channels)) >= 10)

    events = about(receiver, "/all", *channels)
    assert {json.dumps(e, sort_keys=True) for e in events} == {
        json.dumps(e, sort_keys=True)
        for e in [
            {"name": "channel_occupied", "channel": public},
            {"name": "subscription_count", "channel": public, "subscription_count": 1},
            {"name": "channel_occupied", "channel": cache},
            {"name": "cache_miss", "channel": cache},
            {"name": "subscription_count", "channel": cache, "subscription_count": 1},
            {"name": "channel_occupied", "channel": presence},
            {"name": "member_added", "channel": presence, "user_id": "u-alice"},
            {"name": "member_added", "channel": presence, "user_id": "u-bob"},
            {"name": "channel_occupied", "channel": private},
            {"name": "subscription_count", "channel": private, "subscription_count": 1},
            {"name": "subscription_count", "channel": private, "subscription_count": 2},
            {
                "name": "client_event",
                "channel": presence,
                "event": "client-hello",
                "data": '{"n":1}',
                "socket_id": bob.socket_id,
                "user_id": "u-bob",
            },
            {
                "name": "client_event",
                "channel": private,
                "event": "client-psst",
                "data": "text",
                "socket_id": alice.socket_id,
            },
        ]
    }
    assert names(events).index("channel_occupied") < names(events).index("member_added")

    left_at = time.time()
    await close_all(alice, bob)
    await receiver.wait_for(
        lambda: names(about(receiver, "/all", *channels)).count("channel_vacated") == 4,
        timeout=HOLD + 5,
    )
    gone = [
        e for e in about(receiver, "/all", *channels) if e["name"].endswith(("vacated", "removed"))
    ]
    assert sorted((e["name"], e["channel"], e.get("user_id", "")) for e in gone) == sorted(
        [("channel_vacated", c, "") for c in channels]
        + [("member_removed", presence, "u-alice"), ("member_removed", presence, "u-bob")]
    )
    held = [r for r in receiver.received("/all") if any(e in gone for e in r.events)]
    assert min(r.at for r in held) - left_at >= HOLD - 0.2  # held, not sent at once

    the_app = app_of(server, "hooks")
    for received in receiver.received("/all"):
        assert received.headers["x-pusher-key"] == "hooks-key"
        assert received.headers["content-type"] == "application/json"
        assert received.signed_by("hooks-secret")
        assert validated(received, the_app) == received.json


async def test_types_filters_and_custom_headers_per_endpoint(
    server: RunningServer, receiver: WebhookReceiver
) -> None:
    private, public = unique("private"), unique("public")
    feed, other_cache = unique("cache") + "-feed", unique("cache")
    a, b = await connect(server, "hooks"), await connect(server, "hooks")
    for channel in (private, public, feed, other_cache):
        await a.subscribe(channel)
    await b.subscribe(private)
    await a.send("client-x", {}, channel=private)
    await receiver.wait_for(lambda: len(about(receiver, "/private", private)) >= 2)
    await receiver.wait_for(lambda: len(about(receiver, "/cache", feed)) >= 1)
    await asyncio.sleep(0.3)
    await close_all(a, b)

    assert names(about(receiver, "/private", private)) == ["channel_occupied", "client_event"]
    assert about(receiver, "/private", public, feed, other_cache) == []
    assert about(receiver, "/cache", feed) == [{"name": "cache_miss", "channel": feed}]
    assert about(receiver, "/cache", other_cache, private, public) == []
    for received in receiver.received("/private"):
        assert received.headers["x-team"] == "blue"
        assert received.headers["authorization"] == "Bearer t0k3n"
        assert received.signed_by("hooks-secret")


async def test_a_reload_within_the_hold_sends_nothing(
    server: RunningServer, receiver: WebhookReceiver
) -> None:
    public, presence = unique("public"), unique("presence")
    first = await connect(server, "hooks")
    await first.subscribe(public)
    await first.subscribe_presence(presence, "u-reload")
    await receiver.wait_for(lambda: len(about(receiver, "/all", public, presence)) >= 4)
    before = len(about(receiver, "/all", public, presence))

    await first.close()  # the page reloads: a new socket, the same user, within 1 s
    await asyncio.sleep(1.0)
    second = await connect(server, "hooks")
    await second.subscribe(public)
    await second.subscribe_presence(presence, "u-reload")
    await asyncio.sleep(HOLD + 1)
    later = about(receiver, "/all", public, presence)[before:]
    # only the counts moved; no vacated/occupied, no removed/added
    assert {e["name"] for e in later} <= {"subscription_count"}

    await second.close()
    await receiver.wait_for(
        lambda: "channel_vacated" in names(about(receiver, "/all", public)), timeout=HOLD + 5
    )


async def test_events_are_batched(server: RunningServer, receiver: WebhookReceiver) -> None:
    channels = [unique(f"public-batch{i}") for i in range(40)]
    client = await connect(server, "hooks")
    for channel in channels:
        await client.subscribe(channel, wait=False)
    await receiver.wait_for(
        lambda: names(about(receiver, "/all", *channels)).count("channel_occupied") == 40
    )
    await client.close()
    requests = [r for r in receiver.received("/all")
                if any(e["channel"] in channels for e in r.events)]  # fmt: skip
    assert len(requests) <= 4, [len(r.events) for r in requests]
    assert max(len(r.events) for r in requests) >= 20


async def test_a_failing_endpoint_gets_the_event_once_later(
    server: RunningServer, receiver: WebhookReceiver
) -> None:
    receiver.script("/flaky", [500, 503, 200])
    channel = unique("public")
    client = await connect(server, "flaky")
    await client.subscribe(channel)
    await receiver.wait_for(lambda: about(receiver, "/flaky", channel) != [], timeout=5)
    await asyncio.sleep(0.8)  # a fourth attempt would come by now
    await client.close()
    attempts = [r for r in receiver.received("/flaky") if r.events[0]["channel"] == channel]
    assert [r.status for r in attempts] == [500, 503, 200]
    assert attempts[1].at - attempts[0].at >= 0.15  # backed off
    assert about(receiver, "/flaky", channel) == [{"name": "channel_occupied", "channel": channel}]
    assert attempts[2].signed_by("flaky-secret")


async def test_a_refusing_endpoint_is_not_retried(
    server: RunningServer, receiver: WebhookReceiver
) -> None:
    receiver.script("/gone", [404])
    channel = unique("public")
    client = await connect(server, "gone")
    await client.subscribe(channel)
    await receiver.wait_for(lambda: len(receiver.received("/gone")) >= 1, timeout=5)
    await asyncio.sleep(1.0)
    await client.close()
    assert [r.status for r in receiver.received("/gone")] == [404]


async def test_apps_without_webhooks_send_nothing(
    server: RunningServer, receiver: WebhookReceiver
) -> None:
    before = len(receiver.requests)
    client = await connect(server, "quiet")
    await client.subscribe(unique("public"))
    await publish(server, app_of(server, "quiet"), unique("public"), "e", "x")
    await asyncio.sleep(0.3)
    await client.close()
    assert len(receiver.requests) == before


# --- down, dead-lettered, replayed ----------------------------------------------------------


def run_cli(config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUEUE_", "REDIS_"))}
    return subprocess.run(
        [sys.executable, "-m", "sockudo_py", "webhooks", *args, "--config", str(config_path)],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    prefix = f"test_webhooks_{uuid.uuid4().hex[:8]}:"
    yield prefix
    await delete_keys(prefix)


async def test_a_down_endpoint_is_dead_lettered_then_replayed(
    sockudo_server_factory: ServerFactory, redis_prefix: str
) -> None:
    down = WebhookReceiver(port=free_port())  # not started: connections are refused
    the_app = app("dl", [{"url": down.url("/hook"), "event_types": ["channel_occupied"],
                          "retry": FAST_RETRY}])  # fmt: skip
    server = sockudo_server_factory(
        {"queue": {"driver": "redis", "redis": {"prefix": redis_prefix}}}, apps=[the_app]
    )
    channel = unique("public")
    client = await connect(server, "dl")
    await client.subscribe(channel)

    dead: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while not dead and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        listed = run_cli(server.config_path, "dead-letters", "--json")
        assert listed.returncode == 0, listed.stderr
        dead = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
    assert len(dead) == 1, "the job never reached the dead letters"
    [letter] = dead
    assert "network error" in letter["error"]
    assert letter["attempts"] >= 2  # retried within its window before giving up
    assert json.loads(letter["payload"]["body"])["events"] == [
        {"name": "channel_occupied", "channel": channel}
    ]

    with down:  # the endpoint is back
        replayed = run_cli(server.config_path, "replay", letter["id"])
        assert replayed.returncode == 0, replayed.stderr
        await down.wait_for(lambda: len(down.received()) == 1, timeout=10)
        await asyncio.sleep(0.5)
        [got] = down.received()
        assert got.events == [{"name": "channel_occupied", "channel": channel}]
        assert validated(got, the_app) == got.json  # fresh time_ms: the SDK accepts it
    await client.close()
    remaining = run_cli(server.config_path, "dead-letters", "--json")
    assert remaining.returncode == 0 and remaining.stdout.strip() == ""


async def test_webhooks_wait_for_a_queue_that_is_down_at_start(
    sockudo_server_factory: ServerFactory, receiver: WebhookReceiver
) -> None:
    port = free_port()
    the_app = app("late", [{"url": receiver.url("/late"), "event_types": ["channel_occupied"]}])
    queue = {"driver": "redis", "redis": {"url_override": f"redis://127.0.0.1:{port}"}}
    server = sockudo_server_factory({"queue": queue}, apps=[the_app])  # serves all the same
    channel = unique("public")
    client = await connect(server, "late")
    await client.subscribe(channel)
    await asyncio.sleep(1.0)
    assert receiver.received("/late") == []
    with start_redis_server(port):
        await receiver.wait_for(lambda: about(receiver, "/late", channel) != [], timeout=45)
    await client.close()
    assert about(receiver, "/late", channel) == [{"name": "channel_occupied", "channel": channel}]
    assert "webhook queue unreachable" in server.output()
