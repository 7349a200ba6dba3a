"""The scenarios. Each opens its connections in client processes, runs one bounded phase,
reads the server's CPU (and RSS) from /proc around it, and returns one result dict:
``{"scenario", "params", "figures", "complete"}`` (the caller adds the server)."""

from __future__ import annotations

import asyncio
import time
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from itertools import count
from typing import Any

from .pool import ClientPool, loop_factory
from .procstat import own_cpu_seconds
from .publisher import Publisher, event_body
from .servers import Server
from .worker import ConnSpec
from .wsclient import Endpoint

Figures = dict[str, Any]
SAMPLE = 10
"""In fanout at full speed one connection in this many records latency (channels: one per
channel; latency and presence: every one), so reading send stamps costs the client little."""
Hook = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Load:
    """Client-side options every scenario shares."""

    client_procs: int = 1
    concurrency: int = 200
    connect_timeout: float = 60.0
    timeout: float = 60.0
    size: int = 100
    inflight: int = 8
    batch: int = 1
    deflate: bool = False
    settle: float = 10.0


def fanout(
    server: Server,
    load: Load,
    subscribers: int,
    events: int,
    rate: float = 0.0,
    ws_urls: Sequence[str] = (),
    before_publish: Hook | None = None,
) -> dict[str, Any]:
    """``subscribers`` sockets on one channel (spread over ``ws_urls``, default the
    server's), ``events`` HTTP publishes to it: as fast as ``load.inflight`` allows, or at
    ``rate`` per second. ``before_publish`` runs once all are subscribed."""
    urls = list(ws_urls) or [server.ws_url]
    every = 1 if rate else SAMPLE
    conns = [
        ConnSpec(i % len(urls), ("bench-fanout",), record=i % every == 0)
        for i in range(subscribers)
    ]
    params = {"subscribers": subscribers, "events": events, "rate": rate or "max"}

    async def body(pool: ClientPool) -> Figures:
        figures = await connect(pool, load)
        if before_publish is not None:
            await before_publish()
        return join(figures, await broadcast(pool, server, load, ["bench-fanout"], events, rate))

    name = "latency" if rate else "fanout"
    return _run(name, params, server, load, urls, conns, body)


def channels(
    server: Server, load: Load, channel_count: int, per_channel: int, events: int
) -> dict[str, Any]:
    """``channel_count`` channels with ``per_channel`` sockets each; ``events`` publishes
    round-robin over the channels (``load.batch`` events per request)."""
    names = [f"bench-ch-{i}" for i in range(channel_count)]
    conns = [ConnSpec(0, (name,), record=k == 0) for name in names for k in range(per_channel)]
    params = {"channels": channel_count, "per_channel": per_channel, "events": events}

    async def body(pool: ClientPool) -> Figures:
        figures = await connect(pool, load)
        return join(figures, await broadcast(pool, server, load, names, events, 0))

    return _run("channels", params, server, load, [server.ws_url], conns, body)


def presence(
    server: Server, load: Load, rooms: int, members: int, seconds: float, window: int
) -> dict[str, Any]:
    """``rooms`` presence channels of ``members`` sockets (distinct users, auth signed
    here); the members of each room send client events in turn for ``seconds``, at most
    ``window`` per room not yet delivered to every other member."""
    conns = [
        ConnSpec(0, (f"presence-bench-{r}",), user_id=f"user-{r}-{m}", room=r)
        for r in range(rooms)
        for m in range(members)
    ]
    params = {"rooms": rooms, "members": members, "seconds": seconds, "window": window}

    async def body(pool: ClientPool) -> Figures:
        figures = await connect(pool, load)
        meter = Meter(server)
        drain = min(load.timeout, 10.0)
        args = {"seconds": seconds, "window": window, "drain": drain, "padding": "x" * load.size}
        replies = await pool.ask("presence", args, time.time() + seconds + drain)
        used = meter.read()
        figures = join(figures, received_figures(replies, used))
        routed = figures["deliveries"] / max(1, members - 1)
        figures["client_events_sent"] = sum(r["sent"] for r in replies)
        figures["routed_per_s"] = round(routed / figures["seconds"]) if figures["seconds"] else 0
        if "server_cpu_s" in used:
            figures["server_cpu_us_per_routed"] = _per(used["server_cpu_s"], routed)
        return figures

    return _run("presence", params, server, load, [server.ws_url], conns, body)


def storm(
    server: Server, load: Load, connections: int, started_at: float | None = None
) -> dict[str, Any]:
    """Open ``connections`` sockets, each subscribing to its own channel, as fast as
    ``load.concurrency`` per client process allows: connect+subscribe rate, and RSS per
    connection (RSS ``load.settle`` s after the server started, or now, vs ``load.settle``
    s after the last subscription)."""
    conns = [ConnSpec(0, (f"bench-idle-{i}",)) for i in range(connections)]
    params = {"connections": connections, "settle": load.settle}
    tree = server.tree()

    async def body(pool: ClientPool) -> Figures:
        if started_at is not None:
            await asyncio.sleep(max(0.0, started_at + load.settle - time.time()))
        before = tree.rss_bytes() if tree else 0
        meter = Meter(server)
        figures = await connect(pool, load)
        if "server_cpu_s" in (used := meter.read()):
            figures["server_cpu_us_per_connect"] = _per(
                used["server_cpu_s"], figures["connections"]
            )
        if tree is not None:
            await asyncio.sleep(load.settle)
            after = tree.rss_bytes()
            figures |= {
                "rss_before_mb": round(before / 2**20, 1),
                "rss_after_mb": round(after / 2**20, 1),
                "rss_per_connection_kb": round(
                    (after - before) / 1024 / max(1, figures["connections"]), 2
                ),
            }
        return figures

    return _run("storm", params, server, load, [server.ws_url], conns, body)


def _run(
    name: str,
    params: dict[str, Any],
    server: Server,
    load: Load,
    ws_urls: Sequence[str],
    conns: Sequence[ConnSpec],
    body: Callable[[ClientPool], Coroutine[Any, Any, Figures]],
) -> dict[str, Any]:
    """Fork the client processes for ``conns``, run ``body`` in this process's event
    loop, close everything; the result dict."""
    endpoints = [Endpoint(url, server.key, server.secret, load.deflate) for url in ws_urls]
    pool = ClientPool(endpoints, conns, load.client_procs, load.concurrency)
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            figures = runner.run(body(pool))
    finally:
        pool.shutdown()
    tree = server.tree()
    if tree is not None and not tree.alive():
        figures["errors"] = {**figures.get("errors", {}), "server exited": 1}
    complete = (
        figures["failed"] == 0
        and figures.get("deliveries", 0) >= figures.get("expected", 0)
        and "server exited" not in figures.get("errors", {})
    )
    return {"scenario": name, "params": params, "figures": figures, "complete": complete}


class Meter:
    """CPU of the server tree and of this process, and wall time, since creation."""

    def __init__(self, server: Server) -> None:
        self.tree = server.tree()
        self.server0 = self.tree.cpu_seconds() if self.tree else 0.0
        self.own0 = own_cpu_seconds()
        self.wall0 = time.time()

    def read(self) -> Figures:
        wall = time.time() - self.wall0
        figures: Figures = {
            "publisher_busy_pct": round((own_cpu_seconds() - self.own0) / wall * 100)
        }
        if self.tree is not None:
            figures["server_cpu_s"] = round(self.tree.cpu_seconds() - self.server0, 3)
            figures["server_busy_pct"] = round(figures["server_cpu_s"] / wall * 100)
        return figures


async def connect(pool: ClientPool, load: Load) -> Figures:
    """The connect phase of every client process, summed."""
    started = time.time()
    deadline = started + load.connect_timeout
    replies = await pool.ask("connect", {"deadline": deadline}, deadline)
    ok = sum(r["ok"] for r in replies)
    seconds = max(r["finished"] for r in replies) - started
    return {
        "connections": ok,
        "failed": sum(r["failed"] for r in replies),
        "deflated_connections": sum(r["deflated"] for r in replies),
        "connect_s": round(seconds, 3),
        "connects_per_s": round(ok / seconds) if seconds > 0 else 0,
        "connect_client_cpu_s": round(sum(r["cpu_s"] for r in replies), 3),
        "connect_client_busy_pct_max": max(
            round(r["cpu_s"] / max(1e-6, r["finished"] - r["started"]) * 100) for r in replies
        ),
        "errors": _merge(r["errors"] for r in replies),
    }


async def broadcast(
    pool: ClientPool, server: Server, load: Load, names: list[str], events: int, rate: float
) -> Figures:
    """Publish ``events`` bench events round-robin over ``names`` (``load.batch`` per
    request; at ``rate`` requests/s, or as fast as ``load.inflight`` allows) and wait for
    every subscriber to get its share, ``load.timeout`` at most."""
    publishes = max(1, events // load.batch)
    per_channel = Counter(names[i % len(names)] for i in range(publishes * load.batch))
    publisher = Publisher(server.http_url, server.app_id, server.key, server.secret, load.inflight)
    await publisher.open()
    deadline = time.time() + load.timeout
    done = await pool.arm(dict(per_channel), deadline)
    meter = Meter(server)
    try:
        await _publish(publisher, names, publishes, rate, load, deadline)
    finally:
        publisher.close()
    publish_s = time.time() - meter.wall0
    replies = await done
    figures = received_figures(replies, meter.read())
    figures |= {
        "publishes": publisher.sent,
        "publishes_per_s": round(publisher.sent / publish_s) if publish_s else 0,
    }
    if publisher.failures:
        figures["errors"] = {**figures["errors"], **dict(publisher.failures.most_common(5))}
    if "server_cpu_s" in figures:
        figures["server_cpu_us_per_delivery"] = _per(figures["server_cpu_s"], figures["deliveries"])
    return figures


async def _publish(
    publisher: Publisher,
    names: list[str],
    publishes: int,
    rate: float,
    load: Load,
    deadline: float,
) -> None:
    padding, batch = "x" * load.size, load.batch
    if rate:
        loop = asyncio.get_running_loop()
        start, sends = loop.time(), []
        for k in range(publishes):
            await asyncio.sleep(max(0.0, start + k / rate - loop.time()))
            if time.time() > deadline:
                break
            body = event_body(names, k * batch, batch, padding)
            sends.append(asyncio.ensure_future(publisher.publish(body, batch > 1)))
        await asyncio.gather(*sends)
        return
    numbers = count()

    async def lane() -> None:
        while (k := next(numbers)) < publishes and time.time() < deadline:
            await publisher.publish(event_body(names, k * batch, batch, padding), batch > 1)

    await asyncio.gather(*(lane() for _ in range(load.inflight)))


def received_figures(replies: list[dict[str, Any]], used: Figures) -> Figures:
    """Deliveries, their rate and latency, and the CPU of both sides, over a phase."""
    started = min(r["started"] for r in replies)
    seconds = max(r["last_delivery"] for r in replies) - started
    deliveries = sum(r["deliveries"] for r in replies)
    figures: Figures = {
        "deliveries": deliveries,
        "expected": sum(r["expected"] for r in replies),
        "seconds": round(seconds, 3),
        "deliveries_per_s": round(deliveries / seconds) if seconds > 0 else 0,
        **latency_figures(b"".join(r["latencies"] for r in replies)),
        **used,
        "client_cpu_s": round(sum(r["cpu_s"] for r in replies), 3),
        "client_busy_pct_max": max(
            round(r["cpu_s"] / max(1e-6, r["finished"] - r["started"]) * 100) for r in replies
        ),
        "client_procs": len(replies),
        "errors": _merge(r["errors"] for r in replies),
        "closes": _merge(r["closes"] for r in replies),
    }
    if "complete_connections" in replies[0]:
        figures["complete_connections"] = sum(r["complete_connections"] for r in replies)
    return figures


def latency_figures(raw: bytes) -> Figures:
    """p50/p95/p99/max in ms of latencies given as native int64 nanoseconds."""
    samples = array("q")
    samples.frombytes(raw)
    if not samples:
        return {}
    ordered = sorted(samples)
    n = len(ordered)

    def at(q: float) -> float:
        return round(ordered[min(n - 1, int(q * n))] / 1e6, 2)

    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": at(1.0)}


def _per(cpu_s: float, units: float) -> float:
    return round(cpu_s / units * 1e6, 2) if units else 0.0


def join(first: Figures, second: Figures) -> Figures:
    """``first`` updated with ``second``, their ``errors`` and ``closes`` counts added."""
    joined = first | second
    for key in ("errors", "closes"):
        if key in first or key in second:
            joined[key] = _merge([first.get(key, {}), second.get(key, {})])
    return joined


def _merge(counts: Any) -> dict[str, int]:
    total: Counter[str] = Counter()
    for part in counts:
        total.update({str(k): v for k, v in part.items()})
    return dict(total.most_common(8))
