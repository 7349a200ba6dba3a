"""Graceful drain: real sockudo-py processes stopped with SIGTERM (and SIGINT) while real
pusher-js clients (tests/node/drain.mjs) are connected.

* One node, a Redis webhook queue and a receiver that is down: at the signal every pusher-js
  client gets ``pusher:error`` 4200 and a 4200 close and tries to reconnect; meanwhile
  ``/up`` and ``/up/{app}`` answer 503 ``DRAINING``, a new upgrade gets HTTP 503 and the HTTP
  API still answers; the process exits within ``shutdown_grace_period``; the webhooks queued
  before the signal (and the ``channel_vacated`` the drain produced) are delivered by the
  next server on the same queue once the receiver is back.
* Two nodes on Redis behind a small TCP load balancer: SIGTERM node 1 (the balancer sends new
  connections to node 2 by then, as one would once node 1's health check fails): its
  pusher-js clients reconnect at once and land on node 2, and node 2's clients see a member
  of node 1 leave at once (``node_timeout_ms`` is a minute: only the drain can explain it).
* SIGINT drains as SIGTERM does.

Watching the DRAINING window deterministically: a raw client subscribes and then never reads
again, with a tiny receive buffer, while ~8 MB are published to it. Its 4200 close is queued
behind data it never takes, so the node stays in the drain's first phase (still listening:
``/up`` says DRAINING, upgrades get 503) until that phase's share of the grace period is over
and the socket is dropped, which the server logs. The probes run as soon as a reading client
has its 4200, well inside that window.

Bounds, not timings: the exit is checked against the configured grace period; the process
kills itself at the end of it if a phase overruns (exit code 1, which fails these tests).
A missing Redis or Node.js is a failure, never a skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from typing import Any

import httpx
import pytest
import websockets
from interop_server import DEFAULT_APP, HOST, NodeProcess, RunningServer, ServerFactory
from pusher_ws import PusherWs, api, data_of
from test_lifecycle import stalled_subscriber
from test_webhooks_durability import (
    REDIS_URL,
    app_with_webhook,
    redis_queue_config,
    redis_queue_sizes,
)
from test_webhooks_durability import receiver as receiver
from test_webhooks_durability import redis_prefix as redis_prefix
from webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.timeout(60)

GRACE = 5.0  # shutdown_grace_period (s) of the one-node test
CLUSTER_GRACE = 3.0
CLIENTS = 4
STALL_BYTES = 8 * 1024 * 1024  # well over what the kernel buffers between the two ends
GRACEFUL_EXIT = (0, -signal.SIGTERM)  # uvicorn re-raises the signal it caught


async def wait_for(check: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def stall(server: RunningServer, channel: str) -> Any:
    """A subscriber of ``channel`` that never reads, with ``STALL_BYTES`` queued for it."""
    sock = stalled_subscriber(server, channel)
    app, chunk = server.app, "x" * 60_000
    batch = {"batch": [{"name": "flood", "channel": channel, "data": chunk}] * 10}
    await asyncio.sleep(0.2)  # the subscribe is taken
    for _ in range(STALL_BYTES // (10 * len(chunk)) + 1):
        resp = await api(server, app, "POST", f"/apps/{app['id']}/batch_events", batch)
        assert resp.status_code == 200, resp.text
    return sock


async def exit_of(server: RunningServer, signalled_at: float, within: float) -> tuple[int, float]:
    """The exit code of ``server`` and the seconds it took from ``signalled_at``."""
    try:
        code = await asyncio.to_thread(server.process.wait, within + 5)
    except Exception:
        pytest.fail(f"still running {within + 5} s after the signal:\n{server.output()[-3000:]}")
    return code, time.monotonic() - signalled_at


def check_clients(settled: dict[str, Any], *, reconnected: bool) -> None:
    """Every pusher-js client saw the 4200 frame and the 4200 close, and reconnected (or
    tried to)."""
    clients = settled["clients"]
    assert len(clients) == CLIENTS, settled
    for c in clients:
        assert 4200 in c["closes"], c
        assert any(e["type"] == "PusherError" and e["code"] == 4200 for e in c["errors"]), c
        assert c["reconnectAttempts"] >= 1, c
        if reconnected:
            assert len(c["socketIds"]) == 2 and c["socketIds"][0] != c["socketIds"][1], c
            assert c["states"][-1] == "connected", c


# --------------------------------------------------------------------------- one node


async def test_sigterm_drains_the_node_and_leaves_webhooks_queued(
    sockudo_server_factory: ServerFactory, receiver: WebhookReceiver, redis_prefix: str
) -> None:
    receiver.stop()  # the endpoint is down: what is queued stays queued
    app = app_with_webhook(receiver.url("/hook"))
    config = {
        **redis_queue_config(redis_prefix),
        "shutdown_grace_period": GRACE,
        "websocket": {"max_bytes": 4 * STALL_BYTES},  # the stalled socket is not dropped early
    }
    server = sockudo_server_factory(config, apps=[app])
    tag = uuid.uuid4().hex[:8]
    channel, stall_channel = f"drain-{tag}", f"drain-stall-{tag}"
    node = NodeProcess("drain.mjs", server.node_params(clients=CLIENTS, channel=channel))
    watcher = stalled = None
    try:
        ready = await asyncio.to_thread(node.line, 20)
        assert ready["event"] == "ready", ready
        watcher = await PusherWs.connect(server, app["key"])
        stalled = await stall(server, stall_channel)

        async def queued() -> bool:
            sizes = await redis_queue_sizes(redis_prefix)
            return sizes["pending"] + sizes["leased"] >= 1

        await wait_for(queued, "the channel_occupied webhook job in the Redis queue")

        signalled_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        frame = await watcher.expect("pusher:error")
        assert frame["data"] == {"code": 4200, "message": "Server is shutting down"}

        # the node is draining and still listening (the stalled socket holds it there)
        async with httpx.AsyncClient(base_url=server.http_url, trust_env=False) as http:
            for path in ("/up", f"/up/{app['id']}"):
                up = await http.get(path)
                assert (up.status_code, up.text) == (503, "DRAINING"), (path, up.text)
                assert up.headers["x-health-check"] == "DRAINING"
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            await PusherWs.open(server, app["key"])
        assert refused.value.response.status_code == 503
        answered = await api(
            server, app, "POST", f"/apps/{app['id']}/events",
            {"name": "late", "channel": channel, "data": "still answered"},
        )  # fmt: skip
        assert answered.status_code == 200, answered.text
        assert await watcher.expect_close() == 4200

        settled = await asyncio.to_thread(node.line, 15)
        assert settled["event"] == "settled", settled
        check_clients(settled, reconnected=False)
        code, took = await exit_of(server, signalled_at, GRACE)
    finally:
        node.send("done")
        node.close()
        if watcher is not None:
            await watcher.close()
        if stalled is not None:
            stalled.close()
    output = server.output()
    assert code in GRACEFUL_EXIT, output[-3000:]
    assert took < GRACE, f"exit {took:.2f} s after SIGTERM, grace {GRACE} s"
    assert "did not take their close in time: dropped" in output  # the window was held

    # the next server on the same queue delivers what was queued before and at the drain
    sizes = await redis_queue_sizes(redis_prefix)
    assert sizes["pending"] + sizes["leased"] >= 1 and sizes["dead"] == 0, sizes
    successor = sockudo_server_factory(config, apps=[app])
    receiver.start()
    expected = {
        (name, ch)
        for ch in (channel, stall_channel)
        for name in ("channel_occupied", "channel_vacated")
    }

    async def delivered() -> bool:
        got = {(e["name"], e["channel"]) for e in receiver.events("/hook")}
        return expected <= got

    await wait_for(delivered, f"every webhook delivered by the successor:\n{successor.output()}")
    names = [(e["name"], e["channel"]) for e in receiver.events("/hook")]
    assert sorted(names) == sorted(expected), names  # each once


# --------------------------------------------------------------------------- two nodes


class Balancer:
    """A TCP load balancer: each new connection goes to the port ``upstream`` names then."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Balancer:
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.upstream)
        except OSError:
            writer.close()
            return
        pipes = [
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ]
        self._pipes.update(pipes)
        await asyncio.gather(*pipes, return_exceptions=True)
        self._pipes.difference_update(pipes)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                sink.close()


async def test_sigterm_in_a_cluster_moves_clients_to_the_other_node(
    sockudo_server_factory: ServerFactory,
) -> None:
    app = {**DEFAULT_APP, "id": "4242", "key": "drain-key", "secret": "drain-secret"}
    config = {
        "adapter": {
            "driver": "redis",
            "redis": {"prefix": f"drain-{uuid.uuid4().hex[:10]}:"},  # this test's cluster
            "fallback_to_local": False,
        },
        "database": {"redis": {"url": REDIS_URL}},
        "cluster_health": {
            "enabled": True,
            "heartbeat_interval_ms": 1000,
            "node_timeout_ms": 60_000,  # a member leaving within seconds left by the drain
            "cleanup_interval_ms": 1000,
        },
        "shutdown_grace_period": CLUSTER_GRACE,
    }
    first = sockudo_server_factory(config, apps=[app])
    second = sockudo_server_factory(config, apps=[app])
    tag = uuid.uuid4().hex[:8]
    channel, presence = f"drain-{tag}", f"presence-drain-{tag}"

    leaver = await PusherWs.connect(first, app["key"], app["secret"])  # stays on node 1
    observer = await PusherWs.connect(second, app["key"], app["secret"])
    node = None
    try:
        await leaver.subscribe_presence(presence, "leaver")

        async def replicated() -> bool:
            path = f"/apps/{app['id']}/channels/{presence}/users"
            resp = await api(second, app, "GET", path)
            return resp.status_code == 200 and {"id": "leaver"} in resp.json()["users"]

        await wait_for(replicated, "node 2 knowing node 1's member")
        members = await observer.subscribe_presence(presence, "observer")
        assert "leaver" in members["ids"], members

        async with Balancer(first.port) as balancer:
            params = first.node_params(
                app, port=balancer.port, clients=CLIENTS, channel=channel, presence=presence,
                reconnect=True,
            )  # fmt: skip
            node = NodeProcess("drain.mjs", params)
            ready = await asyncio.to_thread(node.line, 20)
            assert ready["event"] == "ready", ready

            balancer.upstream = second.port  # new connections go to node 2 from now on
            signalled_at = time.monotonic()
            first.process.send_signal(signal.SIGTERM)

            left = await observer.expect("pusher_internal:member_removed", presence, timeout=10)
            assert data_of(left) == {"user_id": "leaver"}
            assert (await leaver.expect("pusher:error"))["data"]["code"] == 4200

            settled = await asyncio.to_thread(node.line, 15)
            assert settled["event"] == "settled", settled
            check_clients(settled, reconnected=True)
            path = f"/apps/{app['id']}/channels/{channel}"
            count = await api(second, app, "GET", path, params={"info": "subscription_count"})
            assert count.json() == {"occupied": True, "subscription_count": CLIENTS}, count.text
            node.send("done")
            result = await asyncio.to_thread(node.result, 10)
            assert result["ok"], result
        code, took = await exit_of(first, signalled_at, CLUSTER_GRACE)
    finally:
        if node is not None:
            node.close()
        await leaver.close()
        await observer.close()
    assert code in GRACEFUL_EXIT, first.output()[-3000:]
    assert took < CLUSTER_GRACE, f"exit {took:.2f} s after SIGTERM, grace {CLUSTER_GRACE} s"
    assert second.process.poll() is None


# --------------------------------------------------------------------------- SIGINT


async def test_sigint_drains_as_sigterm_does(sockudo_server_factory: ServerFactory) -> None:
    server = sockudo_server_factory({"shutdown_grace_period": 2})
    client = await PusherWs.connect(server, server.app["key"])
    try:
        signalled_at = time.monotonic()
        os.kill(server.pid, signal.SIGINT)
        assert (await client.expect("pusher:error"))["data"]["code"] == 4200
        assert await client.expect_close() == 4200
        code, took = await exit_of(server, signalled_at, 2)
    finally:
        await client.close()
    assert code == 130, server.output()[-3000:]  # 128 + SIGINT, without a traceback
    assert took < 2
    assert "Traceback" not in server.output()
