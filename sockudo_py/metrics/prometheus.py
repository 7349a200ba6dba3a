"""``Metrics``: the node's Prometheus metrics, under Sockudo's names (``sockudo_`` prefix,
labels ``app_id`` and ``port``) so that dashboards made for Sockudo work, plus ours.

Cheap on the hot path: every labelled child an app uses is looked up once and kept in its
``AppMetrics``; a broadcast is counted once (``n`` deliveries, ``n * len(frame)`` bytes), never
per socket. ``/metrics`` is served in the classic text format (0.0.4) by our own exposition,
because prometheus-client would name every counter ``*_total`` while some of Sockudo's
(``socket_received_bytes``, ``horizontal_adapter_sent_requests``...) have no such suffix.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from ..protocol.channels import ChannelKind, channel_type
from ..protocol.errors import ErrorCode

BROADCAST_BUCKETS_MS = (0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
"""``broadcast_latency_ms`` buckets, as Sockudo's."""
RESOLVE_BUCKETS_MS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 5000,
)  # fmt: skip
"""``horizontal_adapter_resolve_time`` buckets: Sockudo's (0.005-10 ms), extended up to the
request timeouts a Python node over a broker may reach."""

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REFUSALS: dict[int, str] = {
    ErrorCode.APP_NOT_FOUND: "app_not_found",
    ErrorCode.APP_DISABLED: "app_disabled",
    ErrorCode.APP_OVER_QUOTA: "app_over_quota",
    ErrorCode.UNAUTHORIZED: "origin_not_allowed",
    ErrorCode.OVER_CAPACITY: "over_capacity",
    ErrorCode.RECONNECT: "server_shutting_down",
}
"""``connection_errors_total`` ``error_type`` of a connection refused with that code."""

_CHANNEL_TYPES = {
    ChannelKind.PUBLIC: "public",
    ChannelKind.PRIVATE: "private",
    ChannelKind.ENCRYPTED: "private_encrypted",
    ChannelKind.PRESENCE: "presence",
    ChannelKind.SERVER_TO_USER: "server_to_user",
}


@lru_cache(maxsize=8192)
def channel_label(channel: str) -> str:
    """The ``channel_type`` label: Sockudo's ``public``, ``private``, ``presence``,
    ``private_encrypted``, ``cache`` (every ``cache-`` variant), and ``server_to_user``."""
    kind = channel_type(channel)
    return "cache" if kind.is_cache else _CHANNEL_TYPES[kind.kind]


def recipient_bucket(count: int) -> str:
    """The ``recipient_count_bucket`` label (Sockudo's): xs 1-10, sm 11-100, md 101-1000,
    lg 1001-10000, xl beyond."""
    if count <= 10:
        return "xs"
    if count <= 100:
        return "sm"
    if count <= 1000:
        return "md"
    return "lg" if count <= 10000 else "xl"


def text_size(text: str | bytes) -> int:
    """Bytes of ``text`` on the wire (UTF-8), without encoding the usual ASCII frame."""
    if isinstance(text, bytes) or text.isascii():
        return len(text)
    return len(text.encode())


METRICS = """
connected gauge .
    Open WebSocket connections
new_connections_total counter .
    WebSocket connections accepted
new_disconnections_total counter .
    Accepted WebSocket connections closed
connection_errors_total counter error_type
    Connections refused at admission or closed by the server for cause
socket_received_bytes counter .
    Bytes of the WebSocket messages received
socket_transmitted_bytes counter .
    Bytes of the WebSocket messages queued for sockets
ws_messages_received_total counter .
    WebSocket messages received
ws_messages_sent_total counter .
    WebSocket messages queued for sockets (replies and broadcast deliveries)
http_received_bytes counter .
    Bytes of the HTTP API request bodies
http_transmitted_bytes counter .
    Bytes of the HTTP API response bodies
http_calls_received_total counter .
    HTTP API calls, by the app they authenticated as
horizontal_adapter_resolve_time histogram .
    Milliseconds the other nodes took to answer a request
horizontal_adapter_resolved_promises counter .
    Requests to the other nodes that every node answered in time
horizontal_adapter_uncomplete_promises counter .
    Requests to the other nodes that some node did not answer in time
horizontal_adapter_sent_requests counter .
    Requests sent to the other nodes
horizontal_adapter_received_requests counter .
    Requests of other nodes answered
horizontal_adapter_received_responses counter .
    Answers received from other nodes
rate_limit_checks_total counter limiter_type,request_context
    Rate limit checks
rate_limit_triggered_total counter limiter_type,request_context
    Rate limit checks that refused
channel_subscriptions_total counter channel_type
    Channel subscriptions of local sockets
channel_unsubscriptions_total counter channel_type
    Channel unsubscriptions of local sockets
active_channels gauge channel_type
    Channels with a subscriber on this node
broadcast_latency_ms histogram channel_type,recipient_count_bucket
    Milliseconds from a publish entering the node to its frame queued on the last local subscriber
horizontal_transport_reconnections_total counter -driver
    Connections to the broker re-established after it was lost
slow_consumer_disconnects_total counter .
    Sockets closed (4100) because their send buffer was full
webhook_deliveries_total counter .
    Webhook requests answered 2xx
webhook_failures_total counter failure
    Failed webhook requests: retryable (network, timeout, 5xx, 408, 409, 425, 429) or permanent
webhook_dead_letters_total counter .
    Webhook jobs moved to the dead letters
"""
"""Every metric but the cluster gauges and the process collector's, two lines each: the
name after the prefix (exposed exactly so: a counter gets ``_total`` only where the name has
it, as in Sockudo), its type, the labels after ``app_id`` and ``port`` (``.`` none; ``-x``:
label ``x`` alone); then its help. Sockudo's up to ``horizontal_transport_reconnections_total``,
then ours."""

BUCKETS_MS = {
    "horizontal_adapter_resolve_time": RESOLVE_BUCKETS_MS,
    "broadcast_latency_ms": BROADCAST_BUCKETS_MS,
}


class AppMetrics:
    """The labelled children of one app, looked up once (``Metrics.app``).

    The per-message counters (messages and bytes, received and sent) are plain integers,
    counted on the event loop without prometheus-client's lock; ``sync`` adds what they
    gained to their Prometheus children (at each scrape, from the scraping thread: it only
    reads them)."""

    __slots__ = (
        "_metrics",
        "_synced",
        "app_id",
        "connected",
        "latency",
        "new_connections",
        "new_disconnections",
        "received",
        "received_bytes",
        "received_bytes_count",
        "received_count",
        "sent",
        "sent_bytes",
        "sent_bytes_count",
        "sent_count",
        "slow_consumers",
        "subscriptions",
    )

    def __init__(self, metrics: Metrics, app_id: str) -> None:
        self._metrics = metrics
        self.app_id = app_id
        (
            self.connected,
            self.new_connections,
            self.new_disconnections,
            self.received,
            self.received_bytes,
            self.sent,
            self.sent_bytes,
            self.slow_consumers,
        ) = (
            metrics.child(name, app_id)
            for name in (
                "connected",
                "new_connections_total",
                "new_disconnections_total",
                "ws_messages_received_total",
                "socket_received_bytes",
                "ws_messages_sent_total",
                "socket_transmitted_bytes",
                "slow_consumer_disconnects_total",
            )
        )
        self.subscriptions: dict[str, tuple[Any, Any, Any]] = {}
        self.latency: dict[tuple[str, str], Any] = {}
        self.received_count = self.received_bytes_count = 0
        self.sent_count = self.sent_bytes_count = 0
        self._synced = (0, 0, 0, 0)

    def frame_received(self, raw: str | bytes) -> None:
        self.received_count += 1
        self.received_bytes_count += text_size(raw)

    def frame_sent(self, frame: str) -> None:
        """One frame queued for one socket (a reply, not a broadcast)."""
        self.sent_count += 1
        self.sent_bytes_count += text_size(frame)

    def frames_sent(self, frame: str, count: int) -> None:
        """``frame`` queued for ``count`` sockets (a broadcast)."""
        self.sent_count += count
        self.sent_bytes_count += text_size(frame) * count

    def sync(self) -> None:
        """Add what the per-message counters gained since the last ``sync`` to their
        Prometheus children."""
        now = (self.received_count, self.received_bytes_count, self.sent_count,
               self.sent_bytes_count)  # fmt: skip
        children = (self.received, self.received_bytes, self.sent, self.sent_bytes)
        for child, value, before in zip(children, now, self._synced, strict=True):
            if value > before:
                child.inc(value - before)
        self._synced = now

    def slow_consumer(self) -> None:
        self.slow_consumers.inc()
        self._metrics.connection_error(self.app_id, "slow_consumer")

    def rate_limit(self, limiter_type: str, context: str, allowed: bool) -> None:
        self._metrics.rate_limit(self.app_id, limiter_type, context, allowed)

    def channel(self, channel: str) -> tuple[Any, Any, Any]:
        """(subscriptions, unsubscriptions, active channels) of ``channel``'s type."""
        kind = channel_label(channel)
        children = self.subscriptions.get(kind)
        if children is None:
            child, app_id = self._metrics.child, self.app_id
            children = self.subscriptions[kind] = (
                child("channel_subscriptions_total", app_id, kind),
                child("channel_unsubscriptions_total", app_id, kind),
                child("active_channels", app_id, kind),
            )
        return children

    def broadcast_latency(self, channel: str, recipients: int) -> Any:
        key = (channel_label(channel), recipient_bucket(recipients))
        child = self.latency.get(key)
        if child is None:
            child = self.latency[key] = self._metrics.child(
                "broadcast_latency_ms", self.app_id, *key
            )
        return child


class Metrics:
    """Every metric of the node (``METRICS``, and the README's Metrics section).

    Counting never depends on ``metrics.enabled``: ``serve`` starts the ``/metrics``
    listener, and without it the counters still count (cheaply), so callers never check.
    The methods below are what the rest of the server reports through; the adapter calls
    the ``AdapterObserver`` ones, webhook delivery the ``DeliveryObserver`` ones.
    """

    def __init__(self, prefix: str, port: int) -> None:
        self.registry = CollectorRegistry()
        self.port = str(port)
        self._prefix = prefix
        self._bare: set[str] = set()  # counters exposed without "_total"
        self._apps: dict[str, AppMetrics] = {}
        self._children: dict[tuple[str, ...], Any] = {}
        self._server: ThreadingHTTPServer | None = None
        self.metrics: dict[str, Any] = {}
        lines = METRICS.strip().splitlines()
        for row, doc in zip(lines[::2], lines[1::2], strict=True):
            name, kind, extra = row.split()
            labels: tuple[str, ...] = ("app_id", "port")
            if extra.startswith("-"):
                labels, extra = (), extra[1:]
            labels += tuple(label for label in extra.split(",") if label != ".")
            self.metrics[name] = self._make(kind, name, doc.strip(), labels)
        ProcessCollector(registry=self.registry)

    def _make(self, kind: str, name: str, doc: str, labels: tuple[str, ...]) -> Any:
        full = f"{self._prefix}{name}"
        if kind == "gauge":
            return Gauge(full, doc, labels, registry=self.registry)
        if kind == "histogram":
            return Histogram(full, doc, labels, registry=self.registry, buckets=BUCKETS_MS[name])
        if not name.endswith("_total"):
            self._bare.add(full)
        return Counter(full, doc, labels, registry=self.registry)

    def watch_cluster(
        self,
        nodes: Callable[[], float],
        degraded: Callable[[], float],
        dropped: Callable[[], float],
    ) -> None:
        """Gauges read at scrape time: ``cluster_nodes`` (nodes this one knows alive, itself
        included), ``adapter_degraded`` (1 while the broker is unreachable) and
        ``adapter_dropped_messages`` (messages for the broker dropped since start-up because
        its queue overflowed during an outage)."""
        for name, doc, read in (
            ("cluster_nodes", "Nodes of the cluster known alive, this one included", nodes),
            ("adapter_degraded", "1 while this node cannot reach the other nodes", degraded),
            ("adapter_dropped_messages", "Messages for other nodes dropped", dropped),
        ):
            Gauge(f"{self._prefix}{name}", doc, registry=self.registry).set_function(read)

    # --- serving -------------------------------------------------------------------------

    def render(self) -> bytes:
        """Every metric in the Prometheus text format 0.0.4, counters under their exact
        names, without prometheus-client's ``_created`` series."""
        for app in list(self._apps.values()):
            app.sync()
        out: list[str] = []
        for family in self.registry.collect():
            name, kind = family.name, family.type
            exposed = name
            if kind == "counter" and name not in self._bare:
                exposed = f"{name}_total"
            elif kind == "unknown":
                kind = "untyped"
            doc = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
            out.append(f"# HELP {exposed} {doc}\n# TYPE {exposed} {kind}\n")
            created = f"{name}_created"
            for sample in family.samples:
                if sample.name == created:
                    continue
                sample_name = exposed if kind == "counter" else sample.name
                if sample.labels:
                    labels = ",".join(
                        f'{key}="{_escape(value)}"' for key, value in sample.labels.items()
                    )
                    sample_name = f"{sample_name}{{{labels}}}"
                out.append(f"{sample_name} {_number(sample.value)}\n")
        return "".join(out).encode()

    def serve(self, host: str, port: int) -> None:
        """Serve ``GET /metrics`` on ``host:port`` from a daemon thread."""
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404)
                    return
                body = metrics.render()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
            daemon_threads = True

        self._server = Server((host, port), Handler)
        threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True).start()

    # --- connections ---------------------------------------------------------------------

    def app(self, app_id: str) -> AppMetrics:
        """The children of ``app_id`` (made on first use)."""
        app = self._apps.get(app_id)
        if app is None:
            app = self._apps[app_id] = AppMetrics(self, app_id)
        return app

    def message_totals(self) -> dict[str, tuple[float, float]]:
        """WebSocket messages received and sent on this node since start-up, per app that
        has any (the console's message rates)."""
        return {
            app_id: (float(app.received_count), float(app.sent_count))
            for app_id, app in self._apps.items()
        }

    def connection_opened(self, app_id: str) -> None:
        app = self.app(app_id)
        app.connected.inc()
        app.new_connections.inc()

    def connection_closed(self, app_id: str) -> None:
        app = self.app(app_id)
        app.connected.dec()
        app.new_disconnections.inc()

    def connection_refused(self, app_id: str, code: int) -> None:
        """A socket refused at admission with ``code`` (``app_id`` empty if unknown: the
        key a client presents is not a label, or anyone could mint series)."""
        self.connection_error(app_id, REFUSALS.get(code, f"code_{code}"))

    def connection_error(self, app_id: str, error_type: str) -> None:
        self.child("connection_errors_total", app_id, error_type).inc()

    def child(self, name: str, app_id: str, *labels: str) -> Any:
        """The child of metric ``name`` (a row of ``METRICS``) for ``app_id``, this port and
        the rest of the ``labels``, looked up once."""
        key = (name, app_id, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.metrics[name].labels(app_id, self.port, *labels)
        return child

    def rate_limit(self, app_id: str, limiter_type: str, context: str, allowed: bool) -> None:
        """One rate limit check (``app_id`` ``global`` for the per-IP limits, as Sockudo)."""
        self.child("rate_limit_checks_total", app_id, limiter_type, context).inc()
        if not allowed:
            self.child("rate_limit_triggered_total", app_id, limiter_type, context).inc()

    def http_call(self, app_id: str, received: int, transmitted: int) -> None:
        """An HTTP API call authenticated as ``app_id``, its body sizes in and out."""
        self.child("http_calls_received_total", app_id).inc()
        self.child("http_received_bytes", app_id).inc(received)
        self.child("http_transmitted_bytes", app_id).inc(transmitted)

    # --- AdapterObserver -----------------------------------------------------------------

    def delivered(
        self, app_id: str, channel: str, frame: str, count: int, started: float | None
    ) -> None:
        app = self._apps.get(app_id) or self.app(app_id)
        app.frames_sent(frame, count)
        if started is not None:
            app.broadcast_latency(channel, count).observe((time.monotonic() - started) * 1000)

    def subscribed(self, app_id: str, channel: str, first: bool) -> None:
        subscriptions, _, active = self.app(app_id).channel(channel)
        subscriptions.inc()
        if first:
            active.inc()

    def unsubscribed(self, app_id: str, channel: str, last: bool) -> None:
        _, unsubscriptions, active = self.app(app_id).channel(channel)
        unsubscriptions.inc()
        if last:
            active.dec()

    def request_sent(self, app_id: str) -> None:
        self.child("horizontal_adapter_sent_requests", app_id).inc()

    def request_received(self, app_id: str) -> None:
        self.child("horizontal_adapter_received_requests", app_id).inc()

    def response_received(self, app_id: str) -> None:
        self.child("horizontal_adapter_received_responses", app_id).inc()

    def request_done(self, app_id: str, seconds: float | None, complete: bool) -> None:
        if seconds is not None:
            self.child("horizontal_adapter_resolve_time", app_id).observe(seconds * 1000)
        promises = "resolved" if complete else "uncomplete"
        self.child(f"horizontal_adapter_{promises}_promises", app_id).inc()

    def reconnected(self, driver: str) -> None:
        self.metrics["horizontal_transport_reconnections_total"].labels(driver).inc()

    # --- DeliveryObserver (webhooks) -------------------------------------------------------

    def webhook_sent(self, app_id: str) -> None:
        self.child("webhook_deliveries_total", app_id).inc()

    def webhook_failed(self, app_id: str, retryable: bool) -> None:
        failure = "retryable" if retryable else "permanent"
        self.child("webhook_failures_total", app_id, failure).inc()

    def webhook_dead_lettered(self, app_id: str) -> None:
        self.child("webhook_dead_letters_total", app_id).inc()


def _number(value: float) -> str:
    if math.isfinite(value):
        return repr(float(value))
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
