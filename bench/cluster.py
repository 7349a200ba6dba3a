"""Cross-node fan-out benchmark: publish on node 1, receive on the other nodes.

Starts ``--nodes`` sockudo-py nodes (default 3) joined by one cluster adapter (``redis``,
``redis-cluster`` or ``nats``), subscribes ``--sockets`` raw WebSocket clients split evenly
over nodes 2..N (none on node 1), publishes ``--messages`` signed HTTP events on node 1 and
reports deliveries per second and publish-to-receive latency, as ``bench/broadcast.py`` does
(this reuses its client). ``--adapter local`` is the single-node baseline: one node, the
same sockets and publishes on it.

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
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from broadcast import ROOT, add_load_arguments, run, run_client, signed_query, spawn, stop

ADAPTERS = ("local", "redis", "redis-cluster", "nats")


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


async def cluster_count(args: argparse.Namespace, port: int) -> tuple[int | None, str]:
    """``subscription_count`` of the bench channel as node ``port`` sees the cluster."""
    path = f"/apps/{args.app_id}/channels/bench-channel"
    params = signed_query(args.secret, args.key, path, b"", "GET", info="subscription_count")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        response = await http.get(path, params=params)
    if response.status_code != 200:
        return None, f"HTTP {response.status_code}: {response.text[:200]}"
    count = response.json().get("subscription_count")
    return count, response.text[:200]


async def wait_cluster_sees(args: argparse.Namespace, port: int) -> None:
    """Before publishing: node 1 must count every socket of the other nodes (10 s at most)."""
    seen: tuple[int | None, str] = (None, "")
    for _ in range(50):
        seen = await cluster_count(args, port)
        if seen[0] == args.sockets:
            return
        await asyncio.sleep(0.2)
    raise SystemExit(
        f"node 1 (port {port}) does not see the {args.sockets} subscribers of the other "
        f"nodes after 10 s: last answer {seen[1]!r}"
    )


def node_config(args: argparse.Namespace, index: int, adapter: dict[str, Any]) -> dict[str, Any]:
    return {
        "adapter": adapter,
        "database": {"redis": {"url": args.redis_url}},
        "metrics": {"enabled": True, "host": "127.0.0.1", "port": args.metrics_port + index},
        "instance": {"process_id": f"bench-node-{index + 1}"},
        "websocket": {"compression": args.compression},
    }


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
            procs: list[subprocess.Popen[bytes]] = []
            try:  # the nodes stop before the broker (a Redis Cluster) they use
                for i, port in enumerate(ports):
                    procs.append(spawn(port, node_config(args, i, adapter), logs[i]))
                pids = [p.pid for p in procs]
                print(f"{args.adapter}: nodes on {ports} (pids {pids}), prefix {prefix!r}",
                      file=sys.stderr)
                check = (lambda: wait_cluster_sees(args, ports[0])) if args.nodes > 1 else None
                result = run_client(run(args, ports[0], ports[1:] or ports, check))
                for i, proc in enumerate(procs):
                    if proc.poll() is not None:
                        raise SystemExit(f"node {i + 1} exited with {proc.returncode} mid-run")
                ok = True
            finally:
                for proc in procs:
                    stop(proc)
    finally:
        errors = {i: error_lines(log) for i, log in enumerate(logs)}
        for i, lines in errors.items():
            if lines:
                print(f"node {i + 1}: {len(lines)} error lines in its log", file=sys.stderr)
        if not ok or any(errors.values()):
            show_logs(logs)
        shutil.rmtree(logdir, ignore_errors=True)
    return {"adapter": args.adapter, "nodes": args.nodes, "rate": args.rate, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", choices=ADAPTERS, required=True)
    parser.add_argument("--nodes", type=int, help="default 3 (1 for --adapter local)")
    parser.add_argument("--port", type=int, default=6301, help="node i listens on port + i")
    parser.add_argument("--metrics-port", type=int, default=9701, help="node i: this + i")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    add_load_arguments(parser)
    parser.set_defaults(sockets=200, timeout=30)
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
    try:
        print(json.dumps(bench(args)))
    except KeyboardInterrupt:
        raise SystemExit("interrupted; stopped the nodes it started") from None


if __name__ == "__main__":
    main()
