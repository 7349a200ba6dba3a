"""The command line: which server(s), which scenario(s), how many rounds; JSON lines on
stdout as results come, the table at the end."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import scenarios
from .procstat import ProcTree, raise_nofile
from .report import table
from .scenarios import Load
from .servers import (
    KINDS,
    Server,
    port_free,
    running,
    sockudo_config,
    spawn_sockudo,
    spawn_soketi,
)

SCENARIOS = ("fanout", "channels", "presence", "storm", "latency", "all")
Step = Callable[[Server, float | None], dict[str, Any]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pusher_bench",
        description="Load any Pusher-protocol server; print one JSON line per result, then "
        "a table. 'all' runs the issue's targets: fanout, storm for each --connections, "
        "latency, presence (a fresh server for each with --spawn).",
    )
    parser.add_argument("scenario", choices=SCENARIOS)
    target = parser.add_argument_group("server under test")
    target.add_argument(
        "--spawn",
        action="append",
        choices=KINDS,
        default=[],
        help="start a fresh server of this kind for every run, stop it after "
        "(repeat to compare side by side: the kinds alternate)",
    )
    target.add_argument("--host", default="127.0.0.1")
    target.add_argument("--port", type=int, default=6001)
    target.add_argument("--ws-url", help="default ws://HOST:PORT")
    target.add_argument("--http-url", help="default http://HOST:PORT")
    target.add_argument("--app-id", default="app-id")
    target.add_argument("--key", default="app-key")
    target.add_argument("--secret", default="app-secret")
    target.add_argument(
        "--pid",
        type=int,
        help="server PID: CPU (user+sys) and RSS from /proc, summed over its "
        "descendants too (multi-worker servers)",
    )
    target.add_argument("--server-name", default="server", help="label of a given server")
    target.add_argument(
        "--spawn-port",
        type=int,
        default=16600,
        help="first port for spawned servers (each spawn takes the next free)",
    )
    target.add_argument(
        "--server-args", default="", help="extra command-line arguments for a spawned sockudo-py"
    )
    target.add_argument("--workers", type=int, help="spawned sockudo-py: --workers N")
    target.add_argument(
        "--compression",
        default="disabled",
        help="spawned sockudo-py: websocket.compression; the clients offer "
        "permessage-deflate unless disabled",
    )
    target.add_argument(
        "--server-metrics",
        action="store_true",
        help="spawned servers keep Prometheus metrics on (default off)",
    )
    target.add_argument("--pin-server", type=int, metavar="CPU", help="run the server on CPU")
    target.add_argument("--pin-client", type=int, metavar="CPU", help="run this tool on CPU")
    target.add_argument("--rounds", type=int, default=1)
    client = parser.add_argument_group("client")
    client.add_argument("--client-procs", type=int, default=1)
    client.add_argument(
        "--concurrency",
        type=int,
        default=200,
        help="connections being opened at once, per client process",
    )
    client.add_argument("--connect-timeout", type=float, default=60)
    client.add_argument("--timeout", type=float, default=60, help="publish phase bound")
    client.add_argument("--size", type=int, default=100, help="event padding, bytes")
    client.add_argument("--inflight", type=int, default=8, help="HTTP publishes in flight")
    client.add_argument(
        "--batch",
        type=int,
        default=1,
        help="events per HTTP request (batch_events) in fanout and channels",
    )
    client.add_argument(
        "--settle",
        type=float,
        default=10,
        help="storm: seconds after start and after connecting before RSS",
    )
    client.add_argument("--json-only", action="store_true", help="no table at the end")
    sizes = parser.add_argument_group("scenario sizes")
    sizes.add_argument("--subscribers", type=int, default=1000, help="fanout, latency")
    sizes.add_argument("--events", type=int, help="fanout (default 500), channels (5000)")
    sizes.add_argument("--channels", type=int, default=1000)
    sizes.add_argument("--per-channel", type=int, default=5)
    sizes.add_argument("--rooms", type=int, default=500)
    sizes.add_argument("--members", type=int, default=4)
    sizes.add_argument(
        "--window",
        type=int,
        default=4,
        help="presence: client events per room not yet delivered to all",
    )
    sizes.add_argument("--seconds", type=float, default=10, help="presence, latency")
    sizes.add_argument("--rate", type=float, default=50, help="latency: single events/s")
    sizes.add_argument(
        "--connections", default="5000,10000", help="storm: comma list, one run each"
    )
    args = parser.parse_args(argv)
    positive = ("subscribers", "channels", "per_channel", "rooms", "members", "window", "rate")
    if any(getattr(args, name) <= 0 for name in positive) or (args.events or 1) <= 0:
        parser.error("scenario sizes must be positive")
    if args.spawn and args.pid:
        parser.error("--pid is for a server given by URL, not with --spawn")
    if args.batch < 1 or args.batch > 10 or args.inflight < 1 or args.client_procs < 1:
        parser.error("--batch 1..10, --inflight >= 1, --client-procs >= 1")
    return args


def steps(args: argparse.Namespace) -> list[tuple[str, Step]]:
    """The scenario runs one round consists of, in order, with their names."""
    load = Load(
        client_procs=args.client_procs,
        concurrency=args.concurrency,
        connect_timeout=args.connect_timeout,
        timeout=args.timeout,
        size=args.size,
        inflight=args.inflight,
        batch=args.batch,
        deflate=args.compression != "disabled",
        settle=args.settle,
    )
    subs, seconds = args.subscribers, args.seconds

    def fanout(server: Server, _: float | None) -> dict[str, Any]:
        return scenarios.fanout(server, load, subs, args.events or 500)

    def latency(server: Server, _: float | None) -> dict[str, Any]:
        single = dataclasses.replace(load, batch=1)
        return scenarios.fanout(server, single, subs, round(args.rate * seconds), args.rate)

    def channels(server: Server, _: float | None) -> dict[str, Any]:
        return scenarios.channels(
            server, load, args.channels, args.per_channel, args.events or 5000
        )

    def presence(server: Server, _: float | None) -> dict[str, Any]:
        return scenarios.presence(server, load, args.rooms, args.members, seconds, args.window)

    def storm(size: int) -> tuple[str, Step]:
        return "storm", lambda server, started: scenarios.storm(server, load, size, started)

    storms = [storm(int(n)) for n in args.connections.split(",")]
    plans: dict[str, list[tuple[str, Step]]] = {
        "fanout": [("fanout", fanout)],
        "channels": [("channels", channels)],
        "presence": [("presence", presence)],
        "latency": [("latency", latency)],
        "storm": storms,
        "all": [("fanout", fanout), *storms, ("latency", latency), ("presence", presence)],
    }
    return plans[args.scenario]


class Servers:
    """Gives each run its server: a fresh spawn of a kind, or the one given by URL."""

    def __init__(self, args: argparse.Namespace, log_dir: Path) -> None:
        self.args = args
        self.log_dir = log_dir
        self.ports = itertools.count(args.spawn_port)
        self.spawned = 0

    def kinds(self) -> list[str | None]:
        return list(self.args.spawn) or [None]

    def get(self, kind: str | None) -> Server:
        args = self.args
        cpus = None if args.pin_server is None else {args.pin_server}
        if kind is None:
            server = Server(
                args.server_name,
                "",
                args.ws_url or f"ws://{args.host}:{args.port}",
                args.http_url or f"http://{args.host}:{args.port}",
                args.app_id,
                args.key,
                args.secret,
                pid=args.pid,
            )
            if cpus and args.pid:
                ProcTree(args.pid).pin(cpus)
            return server
        port = next(p for p in self.ports if all(map(port_free, (p, p + 1000, p + 2000))))
        self.spawned += 1
        log = self.log_dir / f"{self.spawned:03d}-{kind}-{port}.log"
        if kind == "soketi":
            return spawn_soketi(port, port + 1000, port + 2000, log, cpus, args.server_metrics)
        extra = shlex.split(args.server_args)
        if args.workers:
            extra += ["--workers", str(args.workers)]
        config = sockudo_config(args.compression, port + 1000 if args.server_metrics else None)
        return spawn_sockudo(port, config, log, extra, cpus)


def run(args: argparse.Namespace, log_dir: Path) -> Iterator[dict[str, Any]]:
    """Every result, in order: rounds x steps x server kinds."""
    servers = Servers(args, log_dir)
    for round_number, (name, step) in itertools.product(range(1, args.rounds + 1), steps(args)):
        for kind in servers.kinds():
            server = servers.get(kind)
            started = time.time() if kind else None
            print(
                f"pusher-bench: round {round_number}, {server.name} on {server.ws_url} "
                f"(pid {server.pid})",
                file=sys.stderr,
            )
            with running(server):
                try:
                    result = step(server, started)
                except (OSError, RuntimeError) as exc:
                    result = failure(name, exc, server)
            yield {
                "server": server.name,
                "version": server.version,
                "pid": server.pid,
                "round": round_number,
                "load_avg_1m": os.getloadavg()[0],
                **result,
            }


def failure(name: str, exc: Exception, server: Server) -> dict[str, Any]:
    """The result of a run that broke off (told on stderr with the server log's tail)."""
    error = f"{type(exc).__name__}: {exc}"
    print(f"pusher-bench: {name} failed: {error}\n{server.log_tail()}", file=sys.stderr)
    return {"scenario": name, "params": {}, "figures": {}, "complete": False, "error": error}


def main(argv: list[str] | None = None) -> None:
    """Run, print; exit 1 if any result is incomplete (failed connections, missing
    deliveries, a run that broke off)."""
    args = parse_args(argv)
    raise_nofile()
    if args.pin_client is not None:
        os.sched_setaffinity(0, {args.pin_client})
    # SIGTERM ends the run like Ctrl-C, so the finally blocks stop what was started
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    log_dir = Path(tempfile.mkdtemp(prefix="pusher-bench-"))
    results: list[dict[str, Any]] = []
    try:
        for result in run(args, log_dir):
            results.append(result)
            print(json.dumps(result), flush=True)
    except KeyboardInterrupt:
        raise SystemExit("interrupted; stopped the servers it started") from None
    finally:
        complete = all(r["complete"] for r in results)
        if complete or not any(log_dir.iterdir()):
            shutil.rmtree(log_dir, ignore_errors=True)
        else:
            print(f"pusher-bench: server logs kept in {log_dir}", file=sys.stderr)
    measured = [r for r in results if r["params"]]
    if measured and not args.json_only:
        print()
        print(table(measured))
    if not complete:
        raise SystemExit(1)
