"""Webhooks of a cluster: three sockudo-py processes on one broker (redis, nats,
redis-cluster), every node with the same app and a webhook to one real HTTP receiver
(tests/webhook_receiver.py), and one shared Redis queue (a unique prefix), so any node may
deliver any job. What the cluster reports must be what one server would report: once.

* Occupancy is cluster-wide: sockets on two nodes in one channel make one
  ``channel_occupied``; the first leaving makes nothing, the last one ``channel_vacated``
  after the 3 s hold; 20 channels spread over the nodes get one of each.
* Presence likewise: one ``member_added`` for a user on two nodes, one ``member_removed``
  after the last tab left (and the hold); leaving and coming back on another node within the
  hold sends nothing at all.
* A client event sent on one node: one ``client_event``.
* A node killed with SIGKILL holding a channel's only subscriber: ``channel_vacated`` once,
  after ``cluster_health.node_timeout_ms`` and the hold, whichever node owned the channel.

Each adapter has its own module-scoped cluster; tests tell their events apart by channel
name. Node ids are fixed (``instance.process_id``) so the tests can tell which node owns a
channel (the adapter's rendezvous hashing). A missing broker is a failure, never a skip.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from interop_server import InteropError, RunningServer, ServerFactory, deep_merge
from pusher_ws import PusherWs, api, close_all
from redis_cluster import REDIS_CLUSTER_SEEDS, delete_keys, resolve_fragment
from webhook_receiver import EVENT_TYPES, WebhookReceiver

pytestmark = pytest.mark.timeout(60)

REDIS_URL = "redis://127.0.0.1:6379/0"
NATS_URL = "nats://127.0.0.1:4222"
HOLD = 3.0
NODE_TIMEOUT_MS = 1500
QUEUE_PARTS = ("pending", "leased", "dead")
SETTLE = 0.7  # after the expected webhooks arrived: time for a duplicate to show

APP: dict[str, Any] = {
    "id": "2001",
    "key": "wh-cluster-key",
    "secret": "wh-cluster-secret",
    "enabled": True,
    "enable_client_messages": True,
}

ADAPTERS: dict[str, dict[str, Any]] = {
    "redis": {"adapter": {"driver": "redis"}},
    "nats": {"adapter": {"driver": "nats", "nats": {"servers": [NATS_URL]}}},
    "redis-cluster": {"adapter": {"driver": "redis-cluster",
                                  "cluster": {"nodes": REDIS_CLUSTER_SEEDS}}},
}  # fmt: skip
PREFIX_SECTION = {"redis": "redis", "redis-cluster": "cluster", "nats": "nats"}


def node_config(adapter: str, run_id: str, queue_prefix: str, hook_url: str) -> dict[str, Any]:
    common = {
        "cluster_health": {
            "enabled": True,
            "heartbeat_interval_ms": 300,
            "node_timeout_ms": NODE_TIMEOUT_MS,
            "cleanup_interval_ms": 300,
        },
        "shutdown_grace_period": 1,
        "database": {"redis": {"url": REDIS_URL}},
        "adapter": {
            "fallback_to_local": False,
            PREFIX_SECTION[adapter]: {"prefix": f"wh-{run_id}:"},
        },
        "queue": {
            "driver": "redis",
            "redis": {"prefix": queue_prefix},
            "reliability": {
                "lease_duration_ms": 2000,
                "lease_renew_interval_ms": 400,
                "worker_poll_interval_ms": 50,
                "shutdown_timeout_ms": 1000,
            },
        },
    }
    config = deep_merge(common, ADAPTERS[adapter])
    webhook = {
        "url": hook_url,
        "event_types": EVENT_TYPES,
        "retry": {"initial_backoff_ms": 100, "max_backoff_ms": 500, "max_elapsed_time_ms": 30_000},
    }
    config["app_manager"] = {
        "driver": "memory",
        "array": {"apps": [{**APP, "webhooks": [webhook]}]},
    }
    return config


@dataclass
class Cluster:
    adapter: str
    run_id: str
    config: dict[str, Any]
    servers: list[RunningServer]
    node_ids: list[str]
    factories: list[ServerFactory]
    receiver: WebhookReceiver

    def output(self, tail: int = 2500) -> str:
        return "\n".join(
            f"--- node {i} (port {s.port}, pid {s.pid}) output tail:\n{s.output()[-tail:]}"
            for i, s in enumerate(self.servers)
        )

    def start_node(self, root: Path, node_id: str) -> RunningServer:
        factory = ServerFactory(root)
        self.factories.append(factory)
        config = deep_merge(self.config, {"instance": {"process_id": node_id}})
        return factory(config, apps=config["app_manager"]["array"]["apps"])

    def events(self, channel: str) -> list[dict[str, Any]]:
        """Delivered (2xx) events of ``channel``, in arrival order."""
        return [e for e in self.receiver.events("/hook") if e["channel"] == channel]

    def arrivals(self, channel: str, name: str) -> list[float]:
        """When each request carrying a ``name`` event of ``channel`` arrived (time.time())."""
        return [
            r.at
            for r in self.receiver.received("/hook")
            if 200 <= r.status < 300
            for e in r.events
            if e["channel"] == channel and e["name"] == name
        ]

    async def wait(self, channels: list[str], count: int, timeout: float = 12.0) -> None:
        """Until each of ``channels`` has at least ``count`` delivered events."""
        await self.receiver.wait_for(
            lambda: all(len(self.events(c)) >= count for c in channels),
            timeout,
            f"{count} webhook event(s) on each of {channels}\n{self.output()}",
        )


def owner(node_ids: list[str], app_id: str, channel: str) -> str:
    """The node that reports ``channel``'s transitions (HorizontalAdapter._owns)."""
    key = f"\0{app_id}\0{channel}".encode()
    return max(node_ids, key=lambda n: hashlib.blake2b(n.encode() + key, digest_size=8).digest())


async def wait_joined(servers: list[RunningServer], timeout: float = 10.0) -> None:
    """Until every node counts one probe socket on each node: all nodes know each other
    (and agree on who owns which channel)."""
    channel = f"probe-{uuid.uuid4().hex[:8]}"
    clients = [await PusherWs.connect(s, APP["key"], APP["secret"]) for s in servers]
    try:
        for client in clients:
            await client.subscribe(channel)
        deadline = time.monotonic() + timeout
        for server in servers:
            while True:
                resp = await api(
                    server, APP, "GET", f"/apps/{APP['id']}/channels/{channel}",
                    params={"info": "subscription_count"},
                )  # fmt: skip
                if resp.status_code == 200 and resp.json().get("subscription_count") == len(
                    servers
                ):
                    break
                if time.monotonic() > deadline:
                    raise InteropError(
                        f"node on port {server.port} does not see {len(servers)} probe sockets "
                        f"after {timeout} s: {resp.status_code} {resp.text}"
                    )
                await asyncio.sleep(0.05)
    finally:
        await close_all(*clients)


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture(scope="module", params=list(ADAPTERS))
def cluster(
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    adapter: str = request.param
    run_id = uuid.uuid4().hex[:10]
    queue_prefix = f"test-wh-cluster-{run_id}:"
    config = resolve_fragment(
        request, node_config(adapter, run_id, queue_prefix, receiver.url("/hook"))
    )
    root = Path(tmp_path_factory.mktemp(f"wh-{adapter}"))
    node_ids = [f"wh-{run_id}-n{i}" for i in range(3)]
    running = Cluster(adapter, run_id, config, [], node_ids, [], receiver)
    try:
        dirs = []
        for i in range(3):
            (root / f"node{i}").mkdir()
            dirs.append(root / f"node{i}")
        with ThreadPoolExecutor(3) as pool:
            running.servers = list(pool.map(running.start_node, dirs, node_ids))
        try:
            asyncio.run(wait_joined(running.servers))
        except InteropError as exc:
            raise InteropError(f"{exc}\n{running.output()}") from exc
        yield running
    finally:
        with ThreadPoolExecutor(4) as pool:
            servers = [s for f in running.factories for s in f.servers]
            list(pool.map(lambda s: s.stop(timeout=3), servers))
        asyncio.run(delete_keys(queue_prefix))


@pytest.fixture
async def clients(cluster: Cluster) -> AsyncIterator[list[PusherWs]]:
    """Opened sockets (append them); closed after the test."""
    opened: list[PusherWs] = []
    yield opened
    await close_all(*opened)


async def connect(cluster: Cluster, node: int, opened: list[PusherWs]) -> PusherWs:
    client = await PusherWs.connect(cluster.servers[node], APP["key"], APP["secret"])
    opened.append(client)
    return client


async def unoccupied(server: RunningServer, channel: str, timeout: float = 5.0) -> None:
    """Until ``server`` says ``channel`` has no subscriber on any node."""
    deadline = time.monotonic() + timeout
    while True:
        resp = await api(server, APP, "GET", f"/apps/{APP['id']}/channels/{channel}")
        if resp.status_code == 200 and resp.json()["occupied"] is False:
            return
        assert time.monotonic() < deadline, f"{channel} still occupied: {resp.text}"
        await asyncio.sleep(0.02)


def names(events: list[dict[str, Any]]) -> list[str]:
    return [e["name"] for e in events]


def assert_signed(cluster: Cluster) -> None:
    for r in cluster.receiver.received("/hook"):
        assert r.headers.get("x-pusher-key") == APP["key"], r
        assert r.signed_by(APP["secret"]), r


# --------------------------------------------------------------------------- occupancy


async def test_occupancy_is_reported_once_per_cluster(
    cluster: Cluster, clients: list[PusherWs]
) -> None:
    tag = uuid.uuid4().hex[:8]
    shared = f"wh-shared-{tag}"
    one, two = await connect(cluster, 0, clients), await connect(cluster, 1, clients)
    await one.subscribe(shared)
    await two.subscribe(shared)
    # 20 channels, each with subscribers on two of the three nodes
    spread = [f"wh-spread-{tag}-{i}" for i in range(20)]
    per_node = [await connect(cluster, n, clients) for n in range(3)]
    for i, channel in enumerate(spread):
        await per_node[i % 3].subscribe(channel)
        await per_node[(i + 1) % 3].subscribe(channel)
    await cluster.wait([shared, *spread], 1)

    await one.unsubscribe(shared)  # node 1 leaves: the channel is still occupied on node 2
    await asyncio.sleep(0.5)
    await two.unsubscribe(shared)
    last_left = time.time()
    for i, channel in enumerate(spread):
        await per_node[i % 3].unsubscribe(channel)
        await per_node[(i + 1) % 3].unsubscribe(channel)
    await unoccupied(cluster.servers[2], shared)
    await cluster.wait([shared, *spread], 2, timeout=HOLD + 8)
    await asyncio.sleep(SETTLE)

    for channel in [shared, *spread]:
        assert names(cluster.events(channel)) == ["channel_occupied", "channel_vacated"], (
            channel, cluster.events(channel), cluster.output(),
        )  # fmt: skip
    vacated_at = cluster.arrivals(shared, "channel_vacated")[0]
    assert vacated_at - last_left >= HOLD - 0.1, "vacated before the hold ran out"
    assert_signed(cluster)


# --------------------------------------------------------------------------- presence


async def test_presence_is_reported_once_per_cluster(
    cluster: Cluster, clients: list[PusherWs]
) -> None:
    tag = uuid.uuid4().hex[:8]
    tabs, back = f"presence-wh-tabs-{tag}", f"presence-wh-back-{tag}"

    async def two_tabs() -> float:
        """alice on nodes 0 and 1: one member_added; tab 1 leaves: nothing; tab 2 leaves:
        one member_removed after the hold. When tab 2 left."""
        first, second = await connect(cluster, 0, clients), await connect(cluster, 1, clients)
        await first.subscribe_presence(tabs, "alice")
        await second.subscribe_presence(tabs, "alice")
        await cluster.wait([tabs], 2)
        await first.unsubscribe(tabs)
        await asyncio.sleep(0.5)
        await second.unsubscribe(tabs)
        return time.time()

    async def leave_and_come_back() -> float:
        """bob leaves on node 0 and joins again on node 2 within the hold: nothing at all.
        When he left."""
        before = await connect(cluster, 0, clients)
        await before.subscribe_presence(back, "bob")
        await cluster.wait([back], 2)
        await before.unsubscribe(back)
        await unoccupied(cluster.servers[2], back)
        left = time.time()
        await asyncio.sleep(1.0)
        after = await connect(cluster, 2, clients)
        await after.subscribe_presence(back, "bob")
        return left

    tab_left, bob_left = await asyncio.gather(two_tabs(), leave_and_come_back())
    await cluster.wait([tabs], 4, timeout=HOLD + 8)
    await asyncio.sleep(max(SETTLE, bob_left + HOLD + 1.0 - time.time()))

    alice = cluster.events(tabs)
    assert sorted(names(alice[:2])) == ["channel_occupied", "member_added"], alice
    assert sorted(names(alice[2:])) == ["channel_vacated", "member_removed"], alice
    assert [e.get("user_id") for e in alice if e["name"].startswith("member_")] == [
        "alice",
        "alice",
    ]
    assert min(cluster.arrivals(tabs, "member_removed")) - tab_left >= HOLD - 0.1
    bob = cluster.events(back)
    assert sorted(names(bob)) == ["channel_occupied", "member_added"], (bob, cluster.output())
    assert_signed(cluster)


# --------------------------------------------------------------------------- client events


async def test_client_event_is_reported_once(cluster: Cluster, clients: list[PusherWs]) -> None:
    tag = uuid.uuid4().hex[:8]
    private, presence = f"private-wh-ce-{tag}", f"presence-wh-ce-{tag}"
    listener, sender = await connect(cluster, 0, clients), await connect(cluster, 1, clients)
    await listener.subscribe(private)
    await sender.subscribe(private)
    await listener.subscribe_presence(presence, "listener")
    await sender.subscribe_presence(presence, "carol")
    await cluster.wait([private], 1)
    await cluster.wait([presence], 3)  # occupied, two member_added
    await sender.send("client-typing", {"on": True}, private)
    await sender.send("client-wave", "hi", presence)
    await listener.expect("client-typing", private)
    await listener.expect("client-wave", presence)
    await cluster.receiver.wait_for(
        lambda: sum(e["name"] == "client_event" for c in (private, presence)
                    for e in cluster.events(c)) >= 2,
        10,
        "two client_event webhooks",
    )  # fmt: skip
    await asyncio.sleep(SETTLE)
    got = [e for c in (private, presence) for e in cluster.events(c) if e["name"] == "client_event"]
    assert sorted(got, key=lambda e: e["channel"]) == sorted(
        [
            {"name": "client_event", "channel": private, "event": "client-typing",
             "data": '{"on":true}', "socket_id": sender.socket_id},
            {"name": "client_event", "channel": presence, "event": "client-wave",
             "data": "hi", "socket_id": sender.socket_id, "user_id": "carol"},
        ],
        key=lambda e: e["channel"],
    )  # fmt: skip
    assert_signed(cluster)


# --------------------------------------------------------------------------- SIGKILL
# (last: it adds a fourth node to the cluster and kills it)


async def test_killed_node_channels_are_vacated_once(
    cluster: Cluster, clients: list[PusherWs], tmp_path: Path
) -> None:
    """A fourth node joins, holds the only subscriber of two channels (one it owns, one a
    surviving node owns) and is killed: each channel gets one channel_vacated, after the
    node timeout and the hold, from the nodes that stayed."""
    doomed_id = f"wh-{cluster.run_id}-doomed"
    doomed = await asyncio.to_thread(cluster.start_node, tmp_path, doomed_id)
    await wait_joined([*cluster.servers, doomed])
    everyone = [*cluster.node_ids, doomed_id]
    tag = uuid.uuid4().hex[:8]
    candidates = (f"wh-kill-{tag}-{i}" for i in range(1000))
    owned = next(c for c in candidates if owner(everyone, APP["id"], c) == doomed_id)
    other = next(c for c in candidates if owner(everyone, APP["id"], c) != doomed_id)
    presence = next(
        c for i in range(1000)
        if owner(everyone, APP["id"], c := f"presence-wh-kill-{tag}-{i}") == doomed_id
    )  # fmt: skip
    victim = await PusherWs.connect(doomed, APP["key"], APP["secret"])
    clients.append(victim)
    await victim.subscribe(owned)
    await victim.subscribe(other)
    await victim.subscribe_presence(presence, "dave")
    await cluster.wait([owned, other], 1)
    await cluster.wait([presence], 2)
    await asyncio.sleep(0.2)  # the doomed node acknowledged what it delivered

    os.kill(doomed.pid, signal.SIGKILL)
    doomed.process.wait(timeout=5)
    killed_at = time.time()
    await cluster.wait([owned, other], 2, timeout=NODE_TIMEOUT_MS / 1000 + HOLD + 8)
    await cluster.wait([presence], 4, timeout=5)
    await asyncio.sleep(SETTLE)

    for channel in (owned, other):
        assert names(cluster.events(channel)) == ["channel_occupied", "channel_vacated"], (
            channel, cluster.events(channel), cluster.output(),
        )  # fmt: skip
        waited = cluster.arrivals(channel, "channel_vacated")[0] - killed_at
        # dropped once silent for node_timeout (its last heartbeat <= 0.3 s before the kill)
        assert waited >= NODE_TIMEOUT_MS / 1000 - 0.3 + HOLD - 0.2, waited
    dave = cluster.events(presence)
    assert len(dave) == 4, dave
    assert sorted(names(dave[2:])) == ["channel_vacated", "member_removed"], dave
    assert_signed(cluster)
    for server in cluster.servers:
        assert server.process.poll() is None, cluster.output()


async def test_webhook_jobs_are_all_delivered(cluster: Cluster) -> None:
    """Every job of this cluster was delivered and acknowledged: none left in flight or in
    the dead letters, every request answered 200."""
    client = aioredis.Redis.from_url(REDIS_URL)
    prefix = f"test-wh-cluster-{cluster.run_id}:{{webhooks}}"
    deadline = time.monotonic() + HOLD + 5  # the probes' channel_vacated may still be held
    try:
        while True:
            sizes = {p: int(await client.zcard(f"{prefix}:{p}")) for p in QUEUE_PARTS}
            if sizes == dict.fromkeys(QUEUE_PARTS, 0) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()
    assert sizes == dict.fromkeys(QUEUE_PARTS, 0)
    assert [r.status for r in cluster.receiver.received("/hook") if r.status != 200] == []
