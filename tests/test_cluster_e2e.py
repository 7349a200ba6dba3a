"""Multi-node end-to-end tests: three sockudo-py processes per cluster adapter (redis,
redis-cluster, nats) sharing one broker and a shared cache, with real clients spread over
them. What works on one node must work the same on three.

Per adapter, one module-scoped ``cluster`` starts the three servers (in parallel) with a
unique adapter prefix and cache prefix for this run, short ``cluster_health`` intervals and
``fallback_to_local`` off (an unreachable broker fails start-up: no skips), then waits until
every node counts the sockets of the other two. ``node_run`` runs every scenario of
``tests/node/cluster.mjs`` (pusher-js clients and the Node ``pusher`` SDK) in one Node
process; each scenario is reported by its own test. The PyPI ``pusher`` SDK and raw
WebSocket clients (``tests/pusher_ws.py``) check publishing and channel queries from Python.

Replication between nodes is asynchronous: the scenarios wait for events (bounded), never
for fixed times, and assert "exactly once" after a short settle time (300 ms).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pusher
import pytest
from interop_server import (
    NODE_DIR,
    InteropError,
    RunningServer,
    ServerFactory,
    deep_merge,
    describe_failure,
    require_node,
    run_node,
)
from pusher_ws import PusherWs, api, close_all, data_of
from redis_cluster import REDIS_CLUSTER_SEEDS, resolve_fragment

NODES = 3
REDIS_URL = "redis://127.0.0.1:6379"
NATS_URL = "nats://127.0.0.1:4222"
PARTIAL_HEADER = "X-Sockudo-Partial"

# Numeric ids: the PyPI SDK accepts no other.
MAIN: dict[str, Any] = {
    "id": "1001",
    "key": "e2e-key",
    "secret": "e2e-secret",
    "enabled": True,
    "enable_client_messages": True,
    "enable_subscription_count": True,
}
LIMITED: dict[str, Any] = {
    "id": "1002",
    "key": "e2e-limited-key",
    "secret": "e2e-limited-secret",
    "enabled": True,
    "max_connections": 2,
}

COMMON: dict[str, Any] = {
    "cluster_health": {
        "enabled": True,
        "heartbeat_interval_ms": 300,
        "node_timeout_ms": 1500,
        "cleanup_interval_ms": 300,
    },
    "shutdown_grace_period": 1,
    "channel_limits": {"cache_ttl": 120},  # what the runs leave in the shared Redis expires
}

ADAPTERS: dict[str, dict[str, Any]] = {
    "redis": {
        "adapter": {"driver": "redis", "redis": {"requests_timeout": 2000}},
        "database": {"redis": {"url": REDIS_URL}},
        "cache": {"driver": "redis"},
    },
    "redis-cluster": {
        # the cache finds its seeds in adapter.cluster.nodes too
        "adapter": {
            "driver": "redis-cluster",
            "cluster": {"nodes": REDIS_CLUSTER_SEEDS, "request_timeout_ms": 2000},
        },
        "cache": {"driver": "redis-cluster"},
    },
    "nats": {
        "adapter": {
            "driver": "nats",
            "nats": {"servers": [NATS_URL], "request_timeout_ms": 2000},
        },
        "database": {"redis": {"url": REDIS_URL}},
        "cache": {"driver": "redis"},
    },
}
PREFIX_SECTION = {"redis": "redis", "redis-cluster": "cluster", "nats": "nats"}

# tests/node/cluster.mjs scenarios (test_every_cluster_scenario_is_listed keeps this in step)
SCENARIOS = [
    "publish",  # HTTP publish on each node: every subscriber once; socket_id; batch
    "client-events",  # private + presence client events across nodes, never echoed
    "presence",  # member lists, member_added/removed once, two tabs on two nodes, users
    "presence-race",  # three users join at once on three nodes: consistent, each once
    "cache",  # last event published via n0/n1 replayed on n2; cache_miss
    "channel-queries",  # GET /channels, /channels/{ch} on every node: cluster-wide, complete
    "max-connections",  # app max_connections 2: third socket on another node -> 4004
    "users",  # sendToUser + terminateUserConnections reach sockets on other nodes
    "subscription-count",  # pusher_internal:subscription_count counts every node
    "echo-presence",  # Laravel Echo: join().here/joining/leaving, whisper, listen on 2 nodes
]


@dataclass
class Cluster:
    adapter: str
    run_id: str
    servers: list[RunningServer]

    def output(self, tail: int = 3000) -> str:
        return "\n".join(
            f"--- node {i} (port {s.port}) output tail:\n{s.output()[-tail:]}"
            for i, s in enumerate(self.servers)
        )


def cluster_config(adapter: str, run_id: str) -> dict[str, Any]:
    """The config fragment of every node of ``adapter``'s cluster in this run."""
    unique = {
        "adapter": {
            "fallback_to_local": False,
            PREFIX_SECTION[adapter]: {"prefix": f"e2e-{run_id}:"},
        },
        "cache": {"redis": {"prefix": f"e2e-cache-{run_id}:"}},
    }
    return deep_merge(deep_merge(COMMON, ADAPTERS[adapter]), unique)


def _wait_joined(servers: list[RunningServer], timeout: float = 10.0) -> None:
    """Until every node counts one probe socket on each node: all nodes know each other."""

    async def probe() -> None:
        channel = f"e2e-probe-{uuid.uuid4().hex[:8]}"
        clients = [await PusherWs.connect(s, MAIN["key"], MAIN["secret"]) for s in servers]
        try:
            for client in clients:
                await client.subscribe(channel)
            deadline = time.monotonic() + timeout
            pending = list(servers)
            last: Any = None
            while pending:
                resp = await api(
                    pending[0], MAIN, "GET", f"/apps/{MAIN['id']}/channels/{channel}",
                    params={"info": "subscription_count"},
                )  # fmt: skip
                last = (resp.status_code, resp.text, resp.headers.get(PARTIAL_HEADER))
                if resp.status_code == 200 and resp.json() == {
                    "occupied": True,
                    "subscription_count": len(servers),
                }:
                    pending.pop(0)
                elif time.monotonic() > deadline:
                    raise InteropError(
                        f"node on port {pending[0].port} does not see the {len(servers)} probe "
                        f"sockets after {timeout} s; last answer {last}"
                    )
                else:
                    await asyncio.sleep(0.05)
        finally:
            await close_all(*clients)

    asyncio.run(probe())


def node_factories(root: Path) -> list[ServerFactory]:
    """One ServerFactory per node, each in its own folder under ``root``."""
    factories = []
    for i in range(NODES):
        (root / f"node{i}").mkdir()
        factories.append(ServerFactory(root / f"node{i}"))
    return factories


def start_in_parallel(
    factories: list[ServerFactory], config: dict[str, Any], apps: list[dict[str, Any]]
) -> list[RunningServer]:
    """One node per factory, started at once (each waits for its own /up)."""
    with ThreadPoolExecutor(len(factories)) as pool:
        return list(pool.map(lambda f: f(config, apps=apps), factories))


@pytest.fixture(scope="module", params=list(ADAPTERS))
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """Three sockudo-py nodes on one broker (the param names the adapter)."""
    adapter: str = request.param
    run_id = uuid.uuid4().hex[:12]
    config = resolve_fragment(request, cluster_config(adapter, run_id))
    factories = node_factories(Path(tmp_path_factory.mktemp(f"cluster-{adapter}")))
    try:
        servers = start_in_parallel(factories, config, [MAIN, LIMITED])
        running = Cluster(adapter, run_id, servers)
        try:
            _wait_joined(servers)
        except InteropError as exc:
            raise InteropError(f"{exc}\n{running.output()}") from exc
        yield running
    finally:
        # Stopping promptly is test_sigterm_stops_every_node_promptly's business: here a
        # node still there after 3 s is killed.
        servers = [s for f in factories for s in f.servers]
        with ThreadPoolExecutor(NODES) as pool:
            list(pool.map(lambda s: s.stop(timeout=3), servers))


@pytest.fixture(scope="module")
def node_run(cluster: Cluster) -> dict[str, Any]:
    """Every scenario of tests/node/cluster.mjs against ``cluster``, in one Node process."""
    params = {
        "nodes": [{"host": s.host, "port": s.port} for s in cluster.servers],
        "appId": MAIN["id"],
        "key": MAIN["key"],
        "secret": MAIN["secret"],
        "limited": {
            "appId": LIMITED["id"],
            "key": LIMITED["key"],
            "secret": LIMITED["secret"],
            "maxConnections": LIMITED["max_connections"],
        },
        "scenarios": SCENARIOS,
        "deadlineMs": 45000,
    }
    result = run_node("cluster.mjs", params, timeout=60)
    if not isinstance(result.get("scenarios"), dict):
        raise InteropError(f"cluster.mjs gave no scenario results: {result}")
    return result


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_cluster_scenario(cluster: Cluster, node_run: dict[str, Any], scenario: str) -> None:
    result = node_run["scenarios"].get(scenario)
    assert result is not None, f"no result for {scenario}: {node_run}"
    if not result.get("ok"):
        result = {**result, "stderr": node_run.get("stderr", "")}
        pytest.fail(
            f"[{cluster.adapter}] {describe_failure(result)}\n{cluster.output()}", pytrace=False
        )


def test_every_cluster_scenario_is_listed() -> None:
    proc = subprocess.run(
        [require_node(), "cluster.mjs", "list"],
        cwd=NODE_DIR,
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert json.loads(proc.stdout) == SCENARIOS


def test_up_ok_on_every_node(cluster: Cluster) -> None:
    for server in cluster.servers:
        with urllib.request.urlopen(f"{server.http_url}/up", timeout=5) as resp:
            assert (resp.status, resp.read().decode()) == (200, "OK"), server.port


# --------------------------------------------------------------------------- PyPI pusher SDK


def sdk(server: RunningServer) -> pusher.Pusher:
    return pusher.Pusher(
        app_id=MAIN["id"],
        key=MAIN["key"],
        secret=MAIN["secret"],
        host=server.host,
        port=server.port,
        ssl=False,
        timeout=5,
    )


async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a (blocking) SDK call off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def test_pypi_sdk_publish_once_on_every_node(cluster: Cluster) -> None:
    """The PyPI SDK publishing through each node: every raw subscriber on every node gets
    each event once; socket_id excludes a socket on another node; trigger_batch."""
    chan = f"py-news-{uuid.uuid4().hex[:8]}"
    clients = [await PusherWs.connect(s, MAIN["key"], MAIN["secret"]) for s in cluster.servers]
    sdks = [sdk(s) for s in cluster.servers]
    try:
        for client in clients:
            await client.subscribe(chan)
        for i, client_sdk in enumerate(sdks):
            assert await call(client_sdk.trigger, chan, "py-news", {"from": i}) == {}
        excluded = clients[1].socket_id
        await call(sdks[2].trigger, chan, "py-news", {"x": "not-1"}, socket_id=excluded)
        batch = [{"channel": chan, "name": "py-news", "data": json.dumps({"batch": 1})}]
        assert await call(sdks[0].trigger_batch, batch) == {}
        common: list[dict[str, Any]] = [{"from": 0}, {"from": 1}, {"from": 2}, {"batch": 1}]
        want = [[*common, {"x": "not-1"}], common, [*common, {"x": "not-1"}]]
        for k, client in enumerate(clients):
            got = [data_of(await client.expect("py-news", chan)) for _ in want[k]]
            assert sorted(map(json.dumps, got)) == sorted(map(json.dumps, want[k])), k
        await asyncio.sleep(0.3)  # settle: duplicates or the excluded event would show now
        for k, client in enumerate(clients):
            extra = [f for f in await client.drain(0.05) if f.get("event") == "py-news"]
            assert extra == [], (k, extra)
    finally:
        await close_all(*clients)


async def test_pypi_sdk_channel_queries_on_every_node(cluster: Cluster) -> None:
    """channels_info / channel_info / users_info through each node answer for the whole
    cluster, and the answers are complete (no "partial", no X-Sockudo-Partial)."""
    tag = uuid.uuid4().hex[:8]
    pub, pres = f"py-q-{tag}", f"presence-py-q-{tag}"
    clients = [await PusherWs.connect(s, MAIN["key"], MAIN["secret"]) for s in cluster.servers]
    try:
        for k, client in enumerate(clients):
            await client.subscribe(pub)
            # users: u0 on node 0, u1 on nodes 1 and 2
            await client.subscribe_presence(pres, f"u{min(k, 1)}", {"k": k})
        for i, server in enumerate(cluster.servers):
            client_sdk = sdk(server)
            assert await call(client_sdk.channels_info, f"py-q-{tag}", ["subscription_count"]) == {
                "channels": {pub: {"subscription_count": 3}}
            }, i
            assert await call(client_sdk.channel_info, pub, ["subscription_count"]) == {
                "occupied": True,
                "subscription_count": 3,
            }, i
            users: dict[str, Any] = {}
            for _ in range(100):  # presence members are replicated asynchronously
                users = await call(client_sdk.users_info, pres)
                if len(users.get("users", [])) == 2:
                    break
                await asyncio.sleep(0.05)
            assert sorted(u["id"] for u in users["users"]) == ["u0", "u1"], i
            assert await call(client_sdk.channels_info, pres, ["user_count"]) == {
                "channels": {pres: {"user_count": 2}}
            }, i
            for path, params in (
                (f"/apps/{MAIN['id']}/channels", {"filter_by_prefix": pub}),
                (f"/apps/{MAIN['id']}/channels/{pub}", {"info": "subscription_count"}),
            ):
                resp = await api(server, MAIN, "GET", path, params=params)
                assert resp.status_code == 200, resp.text
                assert PARTIAL_HEADER not in resp.headers and "partial" not in resp.json()
    finally:
        await close_all(*clients)


# --------------------------------------------------------------------------- shutdown

STOP_WITHIN = 5.0
"""Seconds a node may take from SIGTERM to exit (shutdown_grace_period is 1 s here)."""


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_sigterm_stops_every_node_promptly(
    adapter: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """SIGTERM to each node of a fresh 3-node cluster, one after the other: every node
    says bye and exits within STOP_WITHIN seconds."""
    config = resolve_fragment(request, cluster_config(adapter, uuid.uuid4().hex[:12]))
    factories = node_factories(tmp_path)
    try:
        servers = start_in_parallel(factories, config, [MAIN])
        _wait_joined(servers)
        hung: list[str] = []
        for i, server in enumerate(servers):
            server.process.send_signal(signal.SIGTERM)
            try:
                server.process.wait(timeout=STOP_WITHIN)
            except subprocess.TimeoutExpired:
                hung.append(
                    f"node {i} (pid {server.pid}) still running {STOP_WITHIN} s after SIGTERM"
                )
                server.stop(timeout=0.1)
        assert not hung, "\n".join(hung) + "\n" + Cluster(adapter, "", servers).output()
    finally:
        for factory in factories:
            factory.close()
