"""``Metrics``: the node's Prometheus counters and gauges (Sockudo's names, ``sockudo_``
prefix), kept cheap on the hot path by caching one labelled child per app."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


class Metrics:
    """Counters for connections, frames and HTTP calls, labelled ``app_id`` and ``port``.

    ``serve`` starts the ``/metrics`` listener; with metrics disabled, nothing is served but
    the counters still work (they are cheap), so callers never check.
    """

    def __init__(self, prefix: str, port: int) -> None:
        self.registry = CollectorRegistry()
        self.port = str(port)
        labels = ("app_id", "port")

        def counter(name: str, doc: str) -> Counter:
            return Counter(f"{prefix}{name}", doc, labels, registry=self.registry)

        self.connected = Gauge(
            f"{prefix}connected", "Open WebSocket connections", labels, registry=self.registry
        )
        self.new_connections = counter("new_connections", "Accepted WebSocket connections")
        self.new_disconnections = counter("new_disconnections", "Closed WebSocket connections")
        self.connection_errors = Counter(
            f"{prefix}connection_errors",
            "Connections refused or closed by the server, by Pusher code",
            (*labels, "error_type"),
            registry=self.registry,
        )
        self.ws_messages_received = counter("ws_messages_received", "Frames received")
        self.http_calls = counter("http_calls_received", "HTTP API calls")

        self._prefix = prefix

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

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)

    def connection_opened(self, app_id: str) -> None:
        self.connected.labels(app_id, self.port).inc()
        self.new_connections.labels(app_id, self.port).inc()

    def connection_closed(self, app_id: str) -> None:
        self.connected.labels(app_id, self.port).dec()
        self.new_disconnections.labels(app_id, self.port).inc()

    def connection_refused(self, app_id: str, code: int) -> None:
        self.connection_errors.labels(app_id, self.port, str(code)).inc()

    def frame_received(self, app_id: str) -> None:
        self.ws_messages_received.labels(app_id, self.port).inc()

    def http_call(self, app_id: str) -> None:
        self.http_calls.labels(app_id, self.port).inc()
