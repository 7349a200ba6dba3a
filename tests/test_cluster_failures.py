"""Cluster failures with real server processes: a node killed with SIGKILL, and the broker
restarted under traffic.

* SIGKILL (every cluster adapter): the dead node's users disappear from presence and counts
  within ``cluster_health.node_timeout_ms``, with one ``member_removed`` per user left with
  no socket, and the nodes that stayed up lose nothing.
* Broker restart (redis, nats; each test runs its own broker on a spare port, so the shared
  services are never touched): ``/up`` says DEGRADED meanwhile, local delivery continues, the
  nodes reconnect by themselves, and what was published during the outage reaches the other
  node once it is back, exactly once and in order; presence changes made meanwhile arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from interop_server import RunningServer, ServerFactory, free_port
from pusher_ws import PusherWs, api, close_all, data_of, publish
from redis_cluster import RedisClusterError, start_redis_server


def adapter_config(driver: str, broker: str, prefix: str, node_timeout_ms: int) -> dict[str, Any]:
    """config.json sections for ``driver`` at ``broker`` (a URL, or Redis Cluster seeds)."""
    health = {
        "heartbeat_interval_ms": 200,
        "node_timeout_ms": node_timeout_ms,
        "cleanup_interval_ms": 200,
    }
    config: dict[str, Any] = {"cluster_health": health, "adapter": {"driver": driver}}
    if driver == "redis":
        config["database"] = {"redis": {"url": broker}}
        config["adapter"]["redis"] = {"prefix": prefix}
    elif driver == "redis-cluster":
        config["adapter"]["cluster"] = {"nodes": broker.split(","), "prefix": prefix}
    else:
        config["adapter"]["nats"] = {"servers": [broker], "prefix": prefix}
    return config


def start_nodes(
    factory: ServerFactory, count: int, driver: str, broker: str, node_timeout_ms: int
) -> list[RunningServer]:
    prefix = f"failures-{uuid.uuid4().hex[:8]}:"
    config = adapter_config(driver, broker, prefix, node_timeout_ms)
    return [factory(config) for _ in range(count)]


async def health(server: RunningServer) -> str:
    async with httpx.AsyncClient(trust_env=False, timeout=2) as client:
        return (await client.get(f"{server.http_url}/up")).text


async def until_health(server: RunningServer, status: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while (seen := await health(server)) != status:
        if time.monotonic() > deadline:
            raise AssertionError(f"/up stayed {seen!r}, never {status!r}:\n{server.output()}")
        await asyncio.sleep(0.05)


def names(frames: list[dict[str, Any]], event: str) -> list[Any]:
    return [data_of(f)["user_id"] for f in frames if f["event"] == event]


async def join(server: RunningServer, channel: str, user_id: str) -> PusherWs:
    client = await PusherWs.connect(server, server.app["key"], server.app["secret"])
    await client.subscribe_presence(channel, user_id)
    return client


async def until_users(server: RunningServer, channel: str, users: set[str]) -> None:
    """Wait until ``GET .../users`` on ``server`` lists exactly ``users``."""
    app, deadline = server.app, time.monotonic() + 10
    while True:
        resp = await api(server, app, "GET", f"/apps/{app['id']}/channels/{channel}/users")
        seen = {u["id"] for u in resp.json()["users"]}
        if seen == users:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"users on {server.port} stayed {seen}, never {users}")
        await asyncio.sleep(0.05)


class Publisher:
    """Publishes ``seq`` 0, 1, 2, ... to ``channel`` through ``server`` until stopped."""

    def __init__(self, server: RunningServer, channel: str, every: float = 0.03) -> None:
        self.server, self.channel, self.every = server, channel, every
        self.sent: list[int] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def _run(self) -> None:
        seq = 0
        while not self._stopping:
            await publish(self.server, self.server.app, self.channel, "tick", str(seq))
            self.sent.append(seq)
            seq += 1
            await asyncio.sleep(self.every)

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop after the publish in flight (so ``sent`` is exactly what was published)."""
        assert self._task is not None
        self._stopping = True
        await asyncio.wait_for(self._task, 10)


async def ticks(client: PusherWs, expected: list[int], timeout: float = 10.0) -> list[int]:
    """The ``tick`` seqs ``client`` received, once all of ``expected`` did (then settled)."""
    deadline = time.monotonic() + timeout
    got: list[int] = []
    while True:
        got += [int(data_of(f)) for f in await client.drain(0.1) if f["event"] == "tick"]
        if set(expected) <= set(got) or time.monotonic() > deadline:
            return got + [int(data_of(f)) for f in await client.drain(0.3) if f["event"] == "tick"]


# --- SIGKILL -------------------------------------------------------------------------------


@pytest.mark.parametrize("driver", ["redis", "redis-cluster", "nats"])
async def test_sigkill_leaves_no_ghosts_and_loses_nothing(
    driver: str, sockudo_server_factory: ServerFactory, redis_cluster: Any
) -> None:
    broker = {
        "redis": "redis://127.0.0.1:6379/0",
        "redis-cluster": ",".join(redis_cluster.seeds),
        "nats": "nats://127.0.0.1:4222",
    }[driver]
    a, b, doomed = start_nodes(sockudo_server_factory, 3, driver, broker, 1200)
    room = "presence-room"
    watcher = await join(a, room, "watcher")
    bystander = await join(b, room, "bystander")
    u1 = await join(doomed, room, "u1")
    u2_there, u2_here = await join(doomed, room, "u2"), await join(b, room, "u2")
    listeners = [await PusherWs.connect(s, s.app["key"]) for s in (a, b)]
    for client in listeners:
        await client.subscribe("news")
    try:
        await until_users(a, room, {"watcher", "bystander", "u1", "u2"})
        publisher = Publisher(b, "news")
        publisher.start()
        await asyncio.sleep(0.3)
        doomed.process.kill()  # SIGKILL: no goodbye, no unsubscribes
        started = time.monotonic()
        await until_users(a, room, {"watcher", "bystander", "u2"})
        await until_users(b, room, {"watcher", "bystander", "u2"})
        gone_after = time.monotonic() - started
        await asyncio.sleep(0.3)
        await publisher.stop()

        assert gone_after < 1.2 + 2.0, f"ghosts lasted {gone_after:.1f}s"
        for client in (watcher, bystander):
            frames = await client.drain(0.3)
            assert names(frames, "pusher_internal:member_removed") == ["u1"]  # once, not u2
        for client in listeners:  # published throughout: nothing lost, nothing twice
            got = await ticks(client, publisher.sent)
            assert got == publisher.sent
        app = a.app
        resp = await api(a, app, "GET", f"/apps/{app['id']}/channels/{room}",
                         params={"info": "user_count,subscription_count"})  # fmt: skip
        assert resp.json() == {"occupied": True, "user_count": 3, "subscription_count": 3}
        assert "X-Sockudo-Partial" not in resp.headers
        assert await health(a) == "OK"
    finally:
        await close_all(watcher, bystander, u1, u2_there, u2_here, *listeners)


# --- broker restart --------------------------------------------------------------------------


@contextlib.contextmanager
def nats_server(port: int, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A nats-server of our own on ``port``, stopped (by PID) after the block."""
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not Path(binary).exists():
        raise AssertionError("nats-server is missing: apt-get install nats-server")
    log = open(workdir / f"nats-{port}.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([binary, "-a", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError):
                import socket

                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError("nats-server did not start")
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@contextlib.contextmanager
def broker(driver: str, port: int, workdir: Path) -> Iterator[str]:
    """Our own broker of ``driver`` on ``port`` for the block; yields its URL."""
    if driver == "redis":
        try:
            with start_redis_server(port) as server:
                yield server.url
        except RedisClusterError as exc:
            raise AssertionError(str(exc)) from exc
    else:
        with nats_server(port, workdir):
            yield f"nats://127.0.0.1:{port}"


@pytest.mark.parametrize("driver", ["redis", "nats"])
async def test_broker_restart_mid_traffic(
    driver: str, sockudo_server_factory: ServerFactory, tmp_path: Path
) -> None:
    port = free_port()
    outage = contextlib.ExitStack()
    url = outage.enter_context(broker(driver, port, tmp_path))
    # a node timeout above the reconnect back-off, as in production (30 s vs 10 s): each node
    # holds its queue until the other is back, however far apart they reconnect
    a, b = start_nodes(sockudo_server_factory, 2, driver, url, 4000)
    on_a = await PusherWs.connect(a, a.app["key"])
    on_b = await PusherWs.connect(b, b.app["key"])
    watcher = await join(a, "presence-room", "watcher")
    late: PusherWs | None = None
    try:
        for client in (on_a, on_b):
            await client.subscribe("news")
        await until_users(b, "presence-room", {"watcher"})
        publisher = Publisher(a, "news")
        publisher.start()
        await asyncio.sleep(0.3)

        outage.close()  # the broker goes away
        await until_health(a, "DEGRADED")
        await until_health(b, "DEGRADED")
        late = await join(b, "presence-room", "late")  # joins while the nodes are apart
        sent_during = len(publisher.sent)
        await asyncio.sleep(0.5)
        assert len(publisher.sent) > sent_during  # the HTTP API kept answering
        resp = await api(a, a.app, "GET", f"/apps/{a.app['id']}/channels")
        assert resp.status_code == 200 and resp.json()["partial"] is True
        assert resp.headers["X-Sockudo-Partial"] == "1/2"

        with broker(driver, port, tmp_path):  # back on the same port
            await until_health(a, "OK")
            await until_health(b, "OK")
            await until_users(a, "presence-room", {"watcher", "late"})
            await asyncio.sleep(0.3)
            await publisher.stop()
            # local delivery never stopped; the remote part was held and sent once
            assert await ticks(on_a, publisher.sent) == publisher.sent
            assert await ticks(on_b, publisher.sent) == publisher.sent
            frames = await watcher.drain(0.3)
            assert names(frames, "pusher_internal:member_added") == ["late"]
            resp = await api(b, b.app, "GET", f"/apps/{b.app['id']}/channels")
            assert "partial" not in resp.json()
            assert resp.json()["channels"] == {"news": {}, "presence-room": {}}
    finally:
        await close_all(on_a, on_b, watcher, *([late] if late else []))
        outage.close()


async def test_a_node_starts_while_the_broker_is_down(
    sockudo_server_factory: ServerFactory, tmp_path: Path
) -> None:
    """``fallback_to_local`` (the default): it serves local sockets at once, DEGRADED, and
    joins the cluster when the broker appears, without a restart."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    config = adapter_config("redis", url, f"failures-{uuid.uuid4().hex[:8]}:", 4000)
    lonely = sockudo_server_factory(config)
    assert await health(lonely) == "DEGRADED"
    client = await PusherWs.connect(lonely, lonely.app["key"])
    try:
        await client.subscribe("news")
        await publish(lonely, lonely.app, "news", "tick", "0")
        await client.expect("tick", "news")
        with broker("redis", port, tmp_path):
            await until_health(lonely, "OK")
            other = sockudo_server_factory(config)
            await publish(other, other.app, "news", "tick", "1")  # reaches the first node
            assert (await client.expect("tick", "news"))["data"] == "1"
    finally:
        await client.close()
