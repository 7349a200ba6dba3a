"""``workers``: several processes serving one port as one server (``sockudo_py.workers``).

Real processes: a supervisor with two workers on one port (``SO_REUSEPORT``), their local
adapters clustered through the supervisor's IPC hub. Sockets land on either worker (the
kernel picks); whatever worker a publish or a query reaches, it covers them all.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from interop_server import RunningServer, ServerFactory
from pusher_ws import PusherWs, api, close_all, publish, subscription_count

SOCKETS = 16


def workers_of(server: RunningServer) -> list[int]:
    """The supervisor's worker processes."""
    pid = server.process.pid
    children: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        children += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return children


def connected(server: RunningServer, worker: int) -> float:
    """Worker ``worker``'s ``connected`` gauge (its metrics are on ``metrics.port + index``)."""
    url = f"http://{server.host}:{server.metrics_port + worker}/metrics"
    with urllib.request.urlopen(url, timeout=3) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("sockudo_connected{")
    )


async def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def metrics_ports(count: int) -> int:
    """A port P with P .. P+count-1 free, below the ephemeral range (where the clients' own
    ports could take P+1 between this check and the workers' start)."""
    for _ in range(100):
        first = random.randrange(20000, 32000)
        if all(_free(first + n) for n in range(count)):
            return first
    raise RuntimeError("no free metrics ports")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def two_workers(sockudo_server_factory: ServerFactory) -> RunningServer:
    metrics = {"enabled": True, "host": "127.0.0.1", "port": metrics_ports(2)}
    config = {"workers": 2, "shutdown_grace_period": 3, "metrics": metrics}
    server = sockudo_server_factory(config)
    assert len(workers_of(server)) == 2
    deadline = time.monotonic() + 15  # /up answered from one worker: wait for both
    while not (_up(server, 0) and _up(server, 1)):
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.05)
    return server


async def test_two_workers_serve_one_port_as_one_server(two_workers: RunningServer) -> None:
    server = two_workers
    clients = [await PusherWs.connect(server, server.app["key"]) for _ in range(SOCKETS)]
    try:
        for client in clients:
            await client.subscribe("spread")
        # the kernel spread the sockets over both workers
        await wait_for(lambda: connected(server, 0) + connected(server, 1) == SOCKETS)
        assert connected(server, 0) > 0 and connected(server, 1) > 0
        # every query, whichever worker answers it, counts every socket
        for _ in range(4):
            assert await subscription_count(server, server.app, "spread") == SOCKETS
        # a publish reaches every subscriber once, whichever worker took it
        for n in range(3):
            await publish(server, server.app, "spread", "tick", {"n": n})
        for client in clients:
            for n in range(3):
                frame = await client.expect("tick", "spread")
                assert frame["data"] == '{"n":' + str(n) + "}"
            await client.expect_none("tick", "spread")
    finally:
        await close_all(*clients)


async def presence_users(server: RunningServer) -> set[str]:
    path = f"/apps/{server.app['id']}/channels/presence-room/users"
    response = await api(server, server.app, "GET", path)
    return {user["id"] for user in response.json()["users"]}


async def test_presence_and_client_events_across_workers(two_workers: RunningServer) -> None:
    server = two_workers
    app = server.app
    clients = [await PusherWs.connect(server, app["key"], app["secret"]) for _ in range(6)]
    try:
        for n, client in enumerate(clients):
            await client.subscribe_presence("presence-room", f"user-{n}")
        # members replicate between workers as between nodes: soon, every worker knows all
        everyone = {f"user-{n}" for n in range(6)}
        for _ in range(4):
            deadline = time.monotonic() + 5
            while await presence_users(server) != everyone:
                assert time.monotonic() < deadline, await presence_users(server)
                await asyncio.sleep(0.05)
        last = clients[-1]
        await last.send("client-wave", {"from": 5}, channel="presence-room")
        for client in clients[:-1]:
            frame = await client.expect("client-wave", "presence-room")
            assert frame["user_id"] == "user-5"
        await last.expect_none("client-wave", "presence-room")
    finally:
        await close_all(*clients)


async def test_a_dead_worker_is_replaced(two_workers: RunningServer) -> None:
    server = two_workers
    first, second = workers_of(server)
    os.kill(second, signal.SIGKILL)
    await wait_for(lambda: len(workers_of(server)) == 2 and second not in workers_of(server), 15)
    assert first in workers_of(server)
    await wait_for(lambda: _up(server, 1), 15)
    clients = [await PusherWs.connect(server, server.app["key"]) for _ in range(8)]
    try:
        for client in clients:
            await client.subscribe("after")
        await publish(server, server.app, "after", "tick", {})
        for client in clients:
            await client.expect("tick", "after")
    finally:
        await close_all(*clients)


def _up(server: RunningServer, worker: int) -> bool:
    """Worker ``worker`` serves its metrics (it has started)."""
    try:
        return connected(server, worker) >= 0
    except OSError:
        return False


async def test_sigterm_drains_every_worker_and_stops(two_workers: RunningServer) -> None:
    server = two_workers
    workers = workers_of(server)
    clients = [await PusherWs.connect(server, server.app["key"]) for _ in range(6)]
    server.process.send_signal(signal.SIGTERM)
    for client in clients:
        assert await client.expect_close() == 4200
    assert server.process.wait(timeout=10) == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
