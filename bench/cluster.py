"""Cross-node fan-out benchmark: publish on node 1, receive on the other nodes.

Starts ``--nodes`` sockudo-py nodes (default 3) joined by one cluster adapter (``redis``,
``redis-cluster`` or ``nats``), subscribes ``--sockets`` raw WebSocket clients split evenly
over nodes 2..N (none on node 1), publishes ``--messages`` signed HTTP events on node 1 and
reports deliveries per second and publish-to-receive latency: the ``fanout`` scenario of
``bench/pusher_bench`` (its client, its spawn), with the subscribers on other nodes than the
publisher. ``--adapter local`` is the single-node baseline: one node, the same sockets and
publishes on it.

    python bench/cluster.py --adapter redis
    python bench/cluster.py --adapter redis-cluster   # starts a throwaway 3-master cluster
    python bench/cluster.py --adapter nats --sockets 200 --messages 200 --rate 0

Each node gets its own port (``--port`` + i) and metrics port (``--metrics-port`` + i); every
run uses a fresh adapter prefix, so runs (and other users of the broker) do not mix.
Bounded: start-up, subscription and delivery all have timeouts; only the processes this
script started (sockudo-py nodes, and for ``redis-cluster`` the redis-servers started by
``tests/redis_cluster.py``) are stopped, by PID. Node logs are kept in a temporary directory
and shown (tail) when a run fails, or when a node logged an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from pusher_bench.procstat import raise_nofile
from pusher_bench.scenarios import Hook, Load, fanout
from pusher_bench.servers import ROOT, Server, sockudo_config, spawn_sockudo
from pusher_bench.wire import signed_query

ADAPTERS = ("local", "redis", "redis-cluster", "nats")
CHANNEL = "bench-fanout"  # the fanout scenario's channel


@contextlib.contextmanager
def broker(args: argparse.Namespace, prefix: str) -> Iterator[dict[str, Any]]:
    """The ``adapter`` config section of ``args.adapter`` for the block (starting a Redis
    Cluster for ``redis-cluster``), with ``prefix`` as its adapter prefix."""
    if args.adapter == "local":
        yield {"driver": "local"}
    elif args.adapter == "redis":
        yield {"driver": "redis", "redis": {"prefix": prefix}}
    elif args.adapter == "nats":
        yield {"driver": "nats", "nats": {"servers": [args.nats], "prefix": prefix}}
    else:
        sys.path.insert(0, str(ROOT / "tests"))
        from redis_cluster import start_redis_cluster

        with start_redis_cluster() as cluster:
            print(f"redis cluster: {' '.join(cluster.seeds)}", file=sys.stderr)
            yield {"driver": "redis-cluster", "cluster": {"nodes": cluster.seeds, "prefix": prefix}}


async def cluster_count(node: Server) -> tuple[int | None, str]:
    """``subscription_count`` of the bench channel as ``node`` sees the cluster."""
    path = f"/apps/{node.app_id}/channels/{CHANNEL}"
    query = signed_query(node.key, node.secret, "GET", path, info="subscription_count")
    async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
        response = await http.get(f"{path}?{query}")
    if response.status_code != 200:
        return None, f"HTTP {response.status_code}: {response.text[:200]}"
    count = response.json().get("subscription_count")
    return count, response.text[:200]


def wait_cluster_sees(node: Server, sockets: int) -> Hook:
    """Before publishing: ``node`` must count every socket of the other nodes (10 s at
    most), else the run stops with RuntimeError."""

    async def check() -> None:
        seen: tuple[int | None, str] = (None, "")
        for _ in range(50):
            seen = await cluster_count(node)
            if seen[0] == sockets:
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(
            f"node 1 ({node.http_url}) does not see the {sockets} subscribers of the other "
            f"nodes after 10 s: last answer {seen[1]!r}"
        )

    return check


def node_config(args: argparse.Namespace, index: int, adapter: dict[str, Any]) -> dict[str, Any]:
    return sockudo_config(
        args.compression,
        args.metrics_port + index,
        adapter=adapter,
        database={"redis": {"url": args.redis_url}},
        instance={"process_id": f"bench-node-{index + 1}"},
    )


def error_lines(log: Path) -> list[str]:
    text = log.read_text(errors="replace") if log.exists() else ""
    return [line for line in text.splitlines() if " ERROR " in line or "Traceback" in line]


def show_logs(logs: list[Path], lines: int = 30) -> None:
    for i, log in enumerate(logs):
        if log.exists():
            text = log.read_text(errors="replace").splitlines()
            print(f"--- node {i + 1} log, last {lines} lines:", file=sys.stderr)
            print("\n".join(text[-lines:]) or "(empty)", file=sys.stderr)


def bench(args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"bench-{uuid.uuid4().hex[:12]}:"
    ports = [args.port + i for i in range(args.nodes)]
    logdir = Path(tempfile.mkdtemp(prefix="sockudo-cluster-bench-"))
    logs = [logdir / f"node-{i + 1}.log" for i in range(args.nodes)]
    ok = False
    try:
        with broker(args, prefix) as adapter:
            nodes: list[Server] = []
            try:  # the nodes stop before the broker (a Redis Cluster) they use
                for i, port in enumerate(ports):
                    nodes.append(spawn_sockudo(port, node_config(args, i, adapter), logs[i]))
                pids = [node.pid for node in nodes]
                print(
                    f"{args.adapter}: nodes on {ports} (pids {pids}), prefix {prefix!r}",
                    file=sys.stderr,
                )
                result = publish_on_first(args, nodes)
                for i, node in enumerate(nodes):
                    if node.proc is not None and node.proc.poll() is not None:
                        raise SystemExit(f"node {i + 1} exited with {node.proc.returncode}")
                ok = result["complete"]
            finally:
                for node in nodes:
                    node.stop()
    finally:
        errors = {i: error_lines(log) for i, log in enumerate(logs)}
        for i, lines in errors.items():
            if lines:
                print(f"node {i + 1}: {len(lines)} error lines in its log", file=sys.stderr)
        if not ok or any(errors.values()):
            show_logs(logs)
        shutil.rmtree(logdir, ignore_errors=True)
    return {"adapter": args.adapter, "nodes": args.nodes, **result}


def publish_on_first(args: argparse.Namespace, nodes: list[Server]) -> dict[str, Any]:
    """The fanout scenario: publishes on node 1, subscribers spread over the others (or
    on node 1 when it is alone). Server CPU is not read: the work is spread over nodes."""
    first = nodes[0]
    publisher = Server(first.name, first.version, first.ws_url, first.http_url)
    check = wait_cluster_sees(first, args.sockets) if len(nodes) > 1 else None
    load = Load(timeout=args.timeout, size=args.size, deflate=args.compression != "disabled")
    urls = [node.ws_url for node in nodes[1:] or nodes]
    try:
        return fanout(publisher, load, args.sockets, args.messages, args.rate, urls, check)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", choices=ADAPTERS, required=True)
    parser.add_argument("--nodes", type=int, help="default 3 (1 for --adapter local)")
    parser.add_argument("--port", type=int, default=6301, help="node i listens on port + i")
    parser.add_argument("--metrics-port", type=int, default=9701, help="node i: this + i")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50, help="publishes per second (0: max)")
    parser.add_argument("--size", type=int, default=100, help="payload padding in bytes")
    parser.add_argument("--timeout", type=float, default=30)
    parser.add_argument(
        "--compression",
        default="disabled",
        help="websocket.compression of the nodes (Sockudo's values, e.g. "
        "dedicated); the sockets offer permessage-deflate unless disabled",
    )
    args = parser.parse_args()
    if args.nodes is None:
        args.nodes = 1 if args.adapter == "local" else 3
    if args.adapter == "local" and args.nodes != 1:
        parser.error("--adapter local does not cross nodes: use --nodes 1")
    if args.adapter != "local" and not 2 <= args.nodes <= 10:
        parser.error("--nodes: 2..10 with a cluster adapter")
    if not 1 <= args.sockets <= 5000 or not 1 <= args.messages <= 10000:
        parser.error("--sockets 1..5000, --messages 1..10000")
    # SIGTERM ends the run like Ctrl-C (asyncio cancels the client cleanly on SIGINT), and
    # the finally blocks stop what was started
    # (SIGINT is restored first: a background job starts with it ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    raise_nofile()
    try:
        print(json.dumps(bench(args)))
    except KeyboardInterrupt:
        raise SystemExit("interrupted; stopped the nodes it started") from None


if __name__ == "__main__":
    main()
