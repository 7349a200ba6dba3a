"""``GET /metrics`` after real traffic against real server processes, parsed with
prometheus-client's parser: every counter moves by exactly what the traffic accounts for.

* One node: raw WebSocket clients (whose every frame in and out is tallied as it crosses the
  wire) on public, private and presence channels, HTTP publishes, a batch, a bad body, client
  events, pings, per-app rate limits, refused connections, a stalled socket that becomes a
  slow consumer, and webhooks to a receiver that answers 200 on one URL and 404 on another
  (dead-lettered). Sockudo's metric names, types and labels are checked from the text.
* Two nodes over a Redis of our own that starts after the first node: the reconnect, the
  requests between nodes (``horizontal_adapter_*``) and a delivery from the other node.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from interop_server import RunningServer, ServerFactory, free_port
from prometheus_client.parser import text_string_to_metric_families
from pusher_ws import PusherWs, api, close_all, data_of
from test_cluster_failures import adapter_config, broker, until_health
from test_lifecycle import stalled_subscriber
from webhook_receiver import WebhookReceiver

from sockudo_py.metrics import Metrics

P = "sockudo_"
APP = {"app_id", "port"}


def metric_table(table: str) -> dict[str, tuple[str, set[str]]]:
    """``name type [labels besides app_id and port | -label alone]`` a line, as a dict."""
    rows = {}
    for line in table.strip().splitlines():
        name, kind, *extra = line.split()
        labels = {extra[0][1:]} if extra and extra[0].startswith("-") else APP | set(extra)
        rows[P + name] = (kind, labels)
    return rows


SOCKUDO_METRICS = metric_table("""
    connected gauge
    new_connections_total counter
    new_disconnections_total counter
    connection_errors_total counter error_type
    socket_received_bytes counter
    socket_transmitted_bytes counter
    ws_messages_received_total counter
    ws_messages_sent_total counter
    http_received_bytes counter
    http_transmitted_bytes counter
    http_calls_received_total counter
    horizontal_adapter_resolve_time histogram
    horizontal_adapter_resolved_promises counter
    horizontal_adapter_uncomplete_promises counter
    horizontal_adapter_sent_requests counter
    horizontal_adapter_received_requests counter
    horizontal_adapter_received_responses counter
    rate_limit_checks_total counter limiter_type request_context
    rate_limit_triggered_total counter limiter_type request_context
    channel_subscriptions_total counter channel_type
    channel_unsubscriptions_total counter channel_type
    active_channels gauge channel_type
    broadcast_latency_ms histogram channel_type recipient_count_bucket
    horizontal_transport_reconnections_total counter -driver
""")
OURS = metric_table("""
    slow_consumer_disconnects_total counter
    webhook_deliveries_total counter
    webhook_failures_total counter failure
    webhook_dead_letters_total counter
""")
CLUSTER_GAUGES = [f"{P}cluster_nodes", f"{P}adapter_degraded", f"{P}adapter_dropped_messages"]
PROCESS = [
    "process_resident_memory_bytes", "process_virtual_memory_bytes", "process_cpu_seconds_total",
    "process_start_time_seconds", "process_open_fds", "process_max_fds",
]  # fmt: skip
LATENCY_BUCKETS = [0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000]


def make_app(app_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": app_id, "key": f"{app_id}-key", "secret": f"{app_id}-secret", **fields}


SLOW = make_app("m-slow")  # first: tests/test_lifecycle.py's stalled subscriber uses it
MAIN = make_app(
    "m1",
    enable_client_messages=True,
    max_backend_events_per_second=1000,
    max_read_requests_per_second=1,
    max_client_events_per_second=100,
)
OFF = make_app("m-off", enabled=False)


class Scrape:
    """One ``/metrics`` answer: the parsed families, and the exposed names and types."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = list(text_string_to_metric_families(text))
        self.types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))

    def samples(self, name: str) -> list[Any]:
        """The samples exposed as ``name`` (the parser names a counter's samples
        ``<family>_total`` even where the text has no such suffix)."""
        return [
            sample
            for family in self.families
            for sample in family.samples
            if sample.name == name or (family.type == "counter" and sample.name == f"{name}_total")
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples carrying ``labels``."""
        return sum(
            s.value
            for s in self.samples(name)
            if all(s.labels.get(key) == value for key, value in labels.items())
        )

    def label_sets(self, name: str) -> set[frozenset[str]]:
        """The label names of each sample of the family exposed as ``name`` (``le`` aside)."""
        return {
            frozenset(set(sample.labels) - {"le"})
            for family in self.families
            if name in (family.name, f"{family.name}_total")
            for sample in family.samples
        }


async def scrape(server: RunningServer) -> Scrape:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        response = await client.get(f"{server.metrics_url}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(response.text)


async def until(server: RunningServer, condition: Any, what: str, timeout: float = 10.0) -> Scrape:
    """Scrape ``server`` until ``condition(scrape)`` holds (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        metrics = await scrape(server)
        if condition(metrics):
            return metrics
        if time.monotonic() > deadline:
            raise AssertionError(f"metrics never showed {what}:\n{metrics.text}")
        await asyncio.sleep(0.05)


def wire_size(message: str | bytes) -> int:
    return len(message if isinstance(message, bytes) else message.encode())


@dataclass
class Tally:
    """What crossed the wire: WebSocket messages each way, HTTP calls, limiter hits."""

    sent: list[str | bytes] = field(default_factory=list)
    received: list[str | bytes] = field(default_factory=list)
    calls: list[httpx.Response] = field(default_factory=list)
    ws_attempts: int = 0
    api_calls: int = 0

    async def connect(self, server: RunningServer, app: dict[str, Any]) -> PusherWs:
        """A client of ``app`` whose every message in and out is tallied."""
        self.ws_attempts += 1
        client = await PusherWs.open(server, app["key"], app["secret"])
        send, recv = client.ws.send, client.ws.recv

        async def tallied_send(message: str | bytes) -> None:
            self.sent.append(message)
            await send(message)

        async def tallied_recv(*args: Any, **kwargs: Any) -> str | bytes:
            message = await recv(*args, **kwargs)
            self.received.append(message)
            return message

        client.ws.send = tallied_send  # type: ignore[method-assign,assignment]
        client.ws.recv = tallied_recv  # type: ignore[method-assign,assignment]
        client.established = data_of(await client.expect("pusher:connection_established"))
        client.socket_id = client.established["socket_id"]
        return client

    async def call(
        self, server: RunningServer, app: dict[str, Any], method: str, path: str, body: Any = None,
        **kwargs: Any,
    ) -> httpx.Response:  # fmt: skip
        """A signed API call, counted (for ``app``'s HTTP metrics when ``app`` is MAIN)."""
        self.api_calls += 1
        response = await api(server, app, method, f"/apps/{app['id']}{path}", body, **kwargs)
        if app is MAIN:
            self.calls.append(response)
        return response

    async def publish(
        self, server: RunningServer, app: dict[str, Any], channel: str | list[str], name: str,
        data: str = "data",
    ) -> None:  # fmt: skip
        body = {"name": name, "channels" if isinstance(channel, list) else "channel": channel,
                "data": data}  # fmt: skip
        response = await self.call(server, app, "POST", "/events", body)
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        r.script("/gone", [404])
        yield r


async def test_one_node_counts_exactly(
    sockudo_server_factory: ServerFactory, receiver: WebhookReceiver
) -> None:
    hooks = make_app("m-hooks", webhooks=[
        {"url": receiver.url("/ok"), "event_types": ["channel_occupied"]},
        {"url": receiver.url("/gone"), "event_types": ["channel_occupied"]},
    ])  # fmt: skip
    lenient = {"max_requests": 100_000, "window_seconds": 60}
    server = sockudo_server_factory(
        {
            "rate_limiter": {
                "enabled": True,
                "api_rate_limit": lenient,
                "websocket_rate_limit": lenient,
            },
            "websocket": {"max_messages": 50, "max_bytes": 1_000_000},
        },
        apps=[SLOW, MAIN, hooks, OFF],
    )
    port = str(server.port)
    m1 = {"app_id": "m1", "port": port}
    before = await scrape(server)
    tally = Tally()

    # --- m1: four sockets on public, private and presence channels
    a, b, c, d = [await tally.connect(server, MAIN) for _ in range(4)]
    try:
        await a.subscribe("pub-news")
        await b.subscribe("pub-news")
        await c.subscribe("private-room")
        await d.subscribe("private-room")
        await c.subscribe_presence("presence-lobby", "u1")
        await d.subscribe_presence("presence-lobby", "u2")
        await c.expect("pusher_internal:member_added", "presence-lobby")

        # HTTP: two publishes (one to two channels), a batch, a bad body, two reads (limit 1/s)
        await tally.publish(server, MAIN, "pub-news", "e1")
        await tally.publish(server, MAIN, ["pub-news", "private-room"], "e2")
        batch = [{"name": name, "channel": "pub-news", "data": name} for name in ("e3", "e4")]
        r = await tally.call(server, MAIN, "POST", "/batch_events", {"batch": batch})
        assert r.status_code == 200, r.text
        r = await tally.call(server, MAIN, "POST", "/events", raw_body=b"{nope")
        assert r.status_code == 400, r.text
        reads = [await tally.call(server, MAIN, "GET", "/channels") for _ in range(2)]
        assert {r.status_code for r in reads} <= {200, 429}
        for client in (a, b):
            for name in ("e1", "e2", "e3", "e4"):
                await client.expect(name, "pub-news")
        for client in (c, d):
            await client.expect("e2", "private-room")

        # client events, never echoed; a ping
        await c.send("client-hi", {"x": 1}, channel="private-room")
        await d.expect("client-hi", "private-room")
        await d.send("client-yo", {"y": "é"}, channel="presence-lobby")
        await c.expect("client-yo", "presence-lobby")
        for client in (a, b, c, d):  # a pong comes after whatever was queued before it
            await client.send("pusher:ping")
            await client.expect("pusher:pong")

        during = await scrape(server)

        def delta(name: str, **labels: str) -> float:
            return during.value(name, **labels) - before.value(name, **labels)

        assert delta(f"{P}new_connections_total", **m1) == 4
        assert during.value(f"{P}connected", **m1) == 4
        assert delta(f"{P}ws_messages_received_total", **m1) == len(tally.sent) == 6 + 2 + 4
        assert delta(f"{P}socket_received_bytes", **m1) == sum(map(wire_size, tally.sent))
        assert delta(f"{P}ws_messages_sent_total", **m1) == len(tally.received)
        assert delta(f"{P}socket_transmitted_bytes", **m1) == sum(map(wire_size, tally.received))
        assert delta(f"{P}http_calls_received_total", **m1) == len(tally.calls) == 6
        assert delta(f"{P}http_received_bytes", **m1) == sum(
            len(r.request.content) for r in tally.calls
        )
        assert delta(f"{P}http_transmitted_bytes", **m1) == sum(len(r.content) for r in tally.calls)
        for kind in ("public", "private", "presence"):
            assert delta(f"{P}channel_subscriptions_total", **m1, channel_type=kind) == 2
            assert during.value(f"{P}active_channels", **m1, channel_type=kind) == 1
        # one observation per broadcast that reached a socket here: e1-e4 on pub-news,
        # e2 and client-hi on private-room, client-yo on presence-lobby; 1-2 recipients: xs
        for kind, broadcasts in (("public", 4), ("private", 2), ("presence", 1)):
            labels = {**m1, "channel_type": kind, "recipient_count_bucket": "xs"}
            assert delta(f"{P}broadcast_latency_ms_count", **labels) == broadcasts
            assert delta(f"{P}broadcast_latency_ms_bucket", **labels, le="+Inf") == broadcasts
        latency_buckets = {
            float(s.labels["le"]) for s in during.samples(f"{P}broadcast_latency_ms_bucket")
        }
        assert latency_buckets == {*map(float, LATENCY_BUCKETS), float("inf")}

        def limits(limiter: str, context: str, triggered: bool = False, app: str = "m1") -> float:
            name = f"{P}rate_limit_{'triggered' if triggered else 'checks'}_total"
            labels = {"app_id": app, "port": port, "limiter_type": limiter}
            return delta(name, **labels, request_context=context)

        assert limits("max_backend_events_per_second", "http_api") == 3
        assert limits("max_backend_events_per_second", "http_api", triggered=True) == 0
        assert limits("max_read_requests_per_second", "http_api") == 2
        refused_reads = sum(r.status_code == 429 for r in reads)
        assert limits("max_read_requests_per_second", "http_api", triggered=True) == refused_reads
        assert limits("max_client_events_per_second", "websocket") == 2
        assert limits("max_client_events_per_second", "websocket", triggered=True) == 0
    finally:
        await close_all(a, b, c, d)
    after = await until(server, lambda m: m.value(f"{P}connected", **m1) == 0, "m1 closed")
    assert after.value(f"{P}new_disconnections_total", **m1) == 4
    for kind in ("public", "private", "presence"):
        assert after.value(f"{P}channel_unsubscriptions_total", **m1, channel_type=kind) == 2
        assert after.value(f"{P}active_channels", **m1, channel_type=kind) == 0

    # --- refused connections: an unknown key (no app id label), a disabled app
    for key, code in (("nope", 4001), (OFF["key"], 4003)):
        tally.ws_attempts += 1
        refused = await PusherWs.open(server, key)
        assert await refused.expect_close() == code
        await refused.close()

    # --- webhooks: one endpoint answers 200, the other 404 (dead-lettered at once)
    hooked = await tally.connect(server, hooks)
    try:
        await hooked.subscribe("hook-chan")
        m_hooks = {"app_id": "m-hooks", "port": port}
        after = await until(
            server,
            lambda m: (
                m.value(f"{P}webhook_deliveries_total", **m_hooks) == 1
                and m.value(f"{P}webhook_dead_letters_total", **m_hooks) == 1
            ),
            "one webhook delivered and one dead-lettered",
        )
        assert [r.status for r in receiver.received("/ok")] == [200]
        assert [r.status for r in receiver.received("/gone")] == [404]
        failures = f"{P}webhook_failures_total"
        assert after.value(failures, **m_hooks, failure="permanent") == 1
        assert after.value(failures, **m_hooks, failure="retryable") == 0
    finally:
        await hooked.close()

    # --- a socket that stops reading: flooded until it is dropped as a slow consumer
    tally.ws_attempts += 1
    stalled = stalled_subscriber(server, "slow-feed")
    m_slow = {"app_id": "m-slow", "port": port}
    try:
        for _ in range(60):
            for _ in range(10):
                await tally.publish(server, SLOW, "slow-feed", "flood", "x" * 60_000)
            after = await scrape(server)
            if after.value(f"{P}slow_consumer_disconnects_total", **m_slow):
                break
        else:
            raise AssertionError(f"the stalled socket was never dropped:\n{server.output()}")
    finally:
        stalled.close()
    assert after.value(f"{P}slow_consumer_disconnects_total", **m_slow) == 1
    errors = f"{P}connection_errors_total"
    assert after.value(errors, **m_slow, error_type="slow_consumer") == 1
    assert after.value(errors, app_id="", port=port, error_type="app_not_found") == 1
    assert after.value(errors, app_id="m-off", port=port, error_type="app_disabled") == 1

    # --- the per-IP limits (app id "global", as Sockudo): every connect, every API call
    assert after.value(
        f"{P}rate_limit_checks_total", app_id="global", port=port,
        limiter_type="websocket_rate_limit", request_context="websocket_upgrade",
    ) == tally.ws_attempts  # fmt: skip
    assert after.value(
        f"{P}rate_limit_checks_total", app_id="global", port=port,
        limiter_type="api_rate_limit", request_context="http_api",
    ) == tally.api_calls  # fmt: skip

    # --- names, types and labels, as Sockudo's; ours; process metrics
    for name, (kind, labels) in {**SOCKUDO_METRICS, **OURS}.items():
        assert after.types.get(name) == kind, (name, after.types.get(name))
        if "horizontal" in name or (name == f"{P}rate_limit_triggered_total" and not refused_reads):
            assert after.label_sets(name) <= {frozenset(labels)}, name  # none on one node
        else:
            assert after.label_sets(name) == {frozenset(labels)}, name
    for name in CLUSTER_GAUGES:
        assert after.types.get(name) == "gauge" and after.label_sets(name) == {frozenset()}, name
    assert {s.labels["port"] for s in after.samples(f"{P}connected")} == {port}
    assert after.value(f"{P}cluster_nodes") == 1
    assert after.value(f"{P}adapter_degraded") == 0
    for name in PROCESS:
        assert name in after.types, name
    assert after.value("process_resident_memory_bytes") > 0
    assert after.value("process_open_fds") > 0
    assert "_created" not in after.text


async def test_two_nodes_count_requests_and_the_reconnect(
    sockudo_server_factory: ServerFactory, tmp_path: Path
) -> None:
    port = free_port()
    config = adapter_config(
        "redis", f"redis://127.0.0.1:{port}/0", f"metrics-{uuid.uuid4().hex[:8]}:", 4000
    )
    apps = [make_app("c1")]
    first = sockudo_server_factory(config, apps=apps)  # the broker is not there yet
    degraded = await scrape(first)
    assert degraded.value(f"{P}adapter_degraded") == 1
    with broker("redis", port, tmp_path):
        await until_health(first, "OK")
        second = sockudo_server_factory(config, apps=apps)
        for node in (first, second):
            await until(node, lambda m: m.value(f"{P}cluster_nodes") == 2, "two nodes")
        tally = Tally()
        client = await tally.connect(first, apps[0])
        try:
            await client.subscribe("news")
            before = [await scrape(node) for node in (first, second)]
            for _ in range(2):  # each asks the other node once
                r = await tally.call(first, apps[0], "GET", "/channels")
                assert r.status_code == 200 and "partial" not in r.json(), r.text
            await tally.publish(second, apps[0], "news", "far")
            await client.expect("far", "news")
            await client.send("pusher:ping")
            await client.expect("pusher:pong")
            after = [await scrape(node) for node in (first, second)]
        finally:
            await client.close()

    def delta(node: int, name: str, **labels: str) -> float:
        return after[node].value(name, **labels) - before[node].value(name, **labels)

    on = [{"app_id": "c1", "port": str(node.port)} for node in (first, second)]
    h = f"{P}horizontal_adapter_"
    assert delta(0, f"{h}sent_requests", **on[0]) == 2
    assert delta(1, f"{h}received_requests", **on[1]) == 2
    assert delta(0, f"{h}received_responses", **on[0]) == 2
    assert delta(0, f"{h}resolved_promises", **on[0]) == 2
    assert delta(0, f"{h}uncomplete_promises", **on[0]) == 0
    assert delta(0, f"{h}resolve_time_count", **on[0]) == 2
    assert delta(0, f"{h}resolve_time_bucket", **on[0], le="+Inf") == 2
    for name in ("sent_requests", "received_responses", "resolved_promises", "resolve_time"):
        assert after[0].label_sets(h + name) == {frozenset(APP)}, name
    assert after[1].label_sets(f"{h}received_requests") == {frozenset(APP)}
    # the publish on the second node reached the socket on the first: counted there, once;
    # no latency is observed where nobody was subscribed
    assert delta(0, f"{P}ws_messages_sent_total", **on[0]) == 2  # "far" and the pong
    sent_after = tally.received[-2:]
    assert delta(0, f"{P}socket_transmitted_bytes", **on[0]) == sum(map(wire_size, sent_after))
    assert delta(1, f"{P}broadcast_latency_ms_count", **on[1]) == 0
    reconnects = f"{P}horizontal_transport_reconnections_total"
    assert after[0].value(reconnects, driver="redis") == 1
    assert after[0].label_sets(reconnects) == {frozenset({"driver"})}
    assert after[1].value(reconnects) == 0
    assert after[0].value(f"{P}adapter_degraded") == 0


ROOT = Path(__file__).resolve().parent.parent


def exported_names() -> set[str]:
    """Every name a node's /metrics has (the cluster gauges included)."""
    metrics = Metrics("sockudo_", 6001)
    metrics.watch_cluster(lambda: 1, lambda: 0, lambda: 0)
    return set(Scrape(metrics.render().decode()).types)


def test_the_readme_lists_every_metric() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("\n## Metrics\n") :]
    section = section[: section.index("\n## ", 1)]
    missing = {name for name in exported_names() if f"`{name}`" not in section}
    assert not missing, missing


def test_the_grafana_dashboard_uses_what_the_server_exports() -> None:
    """deploy/grafana/sockudo-py.json: valid JSON, every panel on the ``DS_PROMETHEUS``
    datasource variable, an ``app_id`` variable, and only metric names /metrics has."""
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "sockudo-py.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    assert variables["app_id"]["type"] == "query"
    exported = exported_names()
    used = set()
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            used |= set(re.findall(r"\b(?:sockudo|process)_\w+", target["expr"]))
    unknown = {name for name in used if re.sub(r"_(bucket|count|sum)$", "", name) not in exported}
    assert not unknown, unknown
    ours = {name for name in exported if name.startswith("sockudo_")}
    assert ours - {re.sub(r"_bucket$", "", name) for name in used} == set()
