"""The console across nodes: ``ConsoleCluster`` over a relay between two in-process nodes,
then two real sockudo-py processes on Redis, where a console open on one node shows what
the other one saw (with its node id), cluster-wide counts and members, and publishes to
the other node's clients."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from interop_server import RunningServer, ServerFactory
from pusher_ws import PusherWs, close_all, publish
from websockets.asyncio.client import ClientConnection, connect

from sockudo_py.adapters.local import LocalAdapter
from sockudo_py.console import cluster as console_cluster
from sockudo_py.console.cluster import ConsoleCluster
from sockudo_py.console.tap import Subscriber, Tap

WAIT = 5.0


async def until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.01)


# --------------------------------------------------------------------------- in process


class RelayedAdapter(LocalAdapter):
    """A local adapter whose ``relay`` reaches the other adapters of ``bus`` (as JSON, as
    over a broker), a moment later."""

    def __init__(self, node_id: str, bus: list[RelayedAdapter]) -> None:
        super().__init__(node_id)
        self.bus = bus
        bus.append(self)

    def relay(self, message: Any) -> None:
        text = json.dumps(message)
        loop = asyncio.get_running_loop()
        for other in self.bus:
            if other is not self and other.relay_listener is not None:
                loop.call_soon(other.relay_listener, self.node_id, json.loads(text))


class Counting:
    """Message totals that grow by ``step`` per call, as a busy node's would."""

    def __init__(self, step: float) -> None:
        self.step, self.total = step, 0.0

    def __call__(self) -> dict[str, tuple[float, float]]:
        self.total += self.step
        return {"x": (self.total, 2 * self.total)}


@pytest.fixture
async def pair() -> AsyncIterator[tuple[ConsoleCluster, ConsoleCluster]]:
    bus: list[RelayedAdapter] = []
    clusters = [
        ConsoleCluster(RelayedAdapter(name, bus), Tap(name), Counting(step))
        for name, step in (("a", 1.0), ("b", 10.0))
    ]
    for cluster in clusters:
        await cluster.start()
    yield clusters[0], clusters[1]
    for cluster in clusters:
        await cluster.stop()


async def entries(tap: Tap, subscriber: Subscriber, count: int) -> tuple[list[Any], int]:
    got: list[Any] = []
    dropped = 0
    deadline = time.monotonic() + WAIT
    while len(got) < count and time.monotonic() < deadline:
        await asyncio.wait_for(subscriber.wake.wait(), WAIT)
        more, lost = tap.take(subscriber)
        got += more
        dropped += lost
    return got, dropped


async def test_a_console_sees_what_another_node_saw(
    pair: tuple[ConsoleCluster, ConsoleCluster],
) -> None:
    a, b = pair
    assert not b.tap.active
    subscriber = a.tap.subscribe("x")
    a.changed()
    await until(lambda: b.tap.active, "b records for a's console")
    b.tap.connected("x", "1.1")
    b.tap.connected("other-app", "1.2")  # nobody watches it: not recorded
    a.tap.connected("x", "2.2")
    got, dropped = await entries(a.tap, subscriber, 2)
    assert sorted((e["node"], e["socket_id"]) for e in got) == [("a", "2.2"), ("b", "1.1")]
    assert dropped == 0
    # each node reports its message rates of the watched app: a's console adds them up
    await until(lambda: a.rates("x")[2] == 2, "b's rates reach a")
    received, sent, _ = a.rates("x")
    assert received > 10 and sent == pytest.approx(2 * received)
    a.tap.unsubscribe(subscriber)
    a.changed()
    await until(lambda: not b.tap.active, "b stops recording once a's console closed")


async def test_entries_a_node_cannot_forward_are_counted_as_dropped(
    pair: tuple[ConsoleCluster, ConsoleCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    monkeypatch.setattr(console_cluster, "MAX_FORWARD", 3)
    subscriber = a.tap.subscribe("x")
    a.changed()
    await until(lambda: b.tap.active, "b records for a's console")
    for i in range(10):  # at once: more than b may hold until its next batch
        b.tap.connected("x", f"1.{i}")
    got, dropped = await entries(a.tap, subscriber, 3)  # (one message holds both)
    assert [e["socket_id"] for e in got] == ["1.0", "1.1", "1.2"]
    assert dropped == 7


async def test_a_watch_that_is_not_repeated_expires(
    pair: tuple[ConsoleCluster, ConsoleCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, b = pair
    monkeypatch.setattr(console_cluster, "WATCH_TTL", 0.2)
    monkeypatch.setattr(console_cluster, "ANNOUNCE", 0.05)
    b.on_relay("gone", {"k": "watch", "apps": ["x"]})  # a node that then died
    assert b.tap.active
    b.changed()  # the next announcement finds the watch expired
    await until(lambda: not b.tap.active, "the dead node's watch expires")


# --------------------------------------------------------------------------- two processes

REDIS_URL = "redis://127.0.0.1:6379"
ADMIN = "console-cluster-admin"
APP = {"id": "c1", "key": "c1-key", "secret": "c1-secret", "enabled": True}


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RunningServer]]:
    run = uuid.uuid4().hex[:10]
    root = Path(tmp_path_factory.mktemp("console-cluster"))
    factories = []
    for name in ("a", "b"):
        (root / name).mkdir()
        factories.append(ServerFactory(root / name))
    try:
        yield [
            factory(
                {
                    "adapter": {"driver": "redis", "redis": {"prefix": f"console-{run}:"}},
                    "database": {"redis": {"url": REDIS_URL}},
                    "instance": {"process_id": f"node-{name}"},
                    "console": {"enabled": True, "admin_token": ADMIN},
                    "shutdown_grace_period": 1,
                },
                apps=[APP],
            )
            for name, factory in zip("ab", factories, strict=True)
        ]
    finally:
        for factory in factories:
            factory.close()


class Console:
    """The console's API and live log on one node, as the admin."""

    def __init__(self, server: RunningServer, log: ClientConnection) -> None:
        self.server = server
        self.log = log
        self.entries: list[dict[str, Any]] = []

    async def get(self, path: str) -> Any:
        async with httpx.AsyncClient(base_url=self.server.http_url, trust_env=False) as http:
            response = await http.get(
                f"/console/api/apps/{APP['id']}{path}",
                headers={"Authorization": f"Bearer {ADMIN}"},
            )
        assert response.status_code == 200, response.text
        return response.json()

    async def post_event(self, body: dict[str, Any]) -> None:
        async with httpx.AsyncClient(base_url=self.server.http_url, trust_env=False) as http:
            response = await http.post(
                f"/console/api/apps/{APP['id']}/events",
                headers={"Authorization": f"Bearer {ADMIN}"},
                json=body,
            )
        assert response.status_code == 200, response.text

    async def entry(
        self, matches: Callable[[dict[str, Any]], bool], timeout: float = WAIT
    ) -> dict[str, Any]:
        """The first entry of the log (seen so far, or arriving) that ``matches``."""
        deadline = time.monotonic() + timeout
        while True:
            for entry in self.entries:
                if matches(entry):
                    return entry
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no such entry within {timeout} s: {self.entries}")
            try:
                message = json.loads(await asyncio.wait_for(self.log.recv(), left))
            except TimeoutError:
                continue
            self.entries += message.get("entries", [])

    async def poll(self, path: str, condition: Callable[[Any], bool]) -> Any:
        deadline = time.monotonic() + WAIT
        while True:
            body = await self.get(path)
            if condition(body) or time.monotonic() > deadline:
                return body
            await asyncio.sleep(0.05)


async def open_console(server: RunningServer) -> Console:
    log = await connect(f"{server.ws_url}/console/ws")
    await log.send(json.dumps({"type": "auth", "token": ADMIN, "app_id": APP["id"]}))
    ready = json.loads(await asyncio.wait_for(log.recv(), WAIT))
    assert ready["type"] == "ready" and ready["node"] == "node-a", ready
    return Console(server, log)


async def until_recorded(
    console: Console, step: Callable[[int], Awaitable[None]], what: str
) -> dict[str, Any]:
    """Repeat ``step(n)`` until the console logs its event ``probe-<n>`` (the other node
    learns of the console a moment after it opened)."""
    for n in range(50):
        await step(n)
        try:
            return await console.entry(lambda e, n=n: e.get("event") == f"probe-{n}", 0.1)
        except AssertionError:
            continue
    raise AssertionError(f"the console never showed {what}")


async def test_a_console_on_one_node_shows_the_whole_cluster(nodes: list[RunningServer]) -> None:
    a, b = nodes
    console = await open_console(a)
    client = await PusherWs.connect(b, APP["key"], APP["secret"])
    try:
        stats = await console.poll("/stats", lambda s: s["nodes"] == 2)
        assert stats["nodes"] == 2, stats
        probe = await until_recorded(
            console, lambda n: publish(b, APP, "probes", f"probe-{n}", "{}"), "b's publishes"
        )
        assert probe["node"] == "node-b" and probe["via"] == "http"

        await client.subscribe_presence("presence-lobby", "grace")
        joined = await console.entry(lambda e: e["kind"] == "subscribed")
        assert (joined["node"], joined["user_id"]) == ("node-b", "grace")
        assert (joined["channels"], joined["socket_id"]) == (["presence-lobby"], client.socket_id)
        channels = await console.poll("/channels", lambda c: c["channels"])
        assert channels["channels"] == [
            {"name": "presence-lobby", "subscription_count": 1, "user_count": 1}
        ]
        members = await console.get("/channels/presence-lobby/members")
        assert [m["id"] for m in members["members"]] == ["grace"]
        stats = await console.get("/stats")
        assert (stats["connections"], stats["missing_nodes"]) == (1, 0)

        # the event creator on node a reaches the client on node b
        await console.post_event({"channel": "presence-lobby", "name": "hi", "data": '"there"'})
        assert (await client.expect("hi", "presence-lobby"))["data"] == '"there"'
        sent = await console.entry(lambda e: e.get("event") == "hi")
        assert (sent["node"], sent["via"]) == ("node-a", "console")
    finally:
        await close_all(client)
        await console.log.close()
