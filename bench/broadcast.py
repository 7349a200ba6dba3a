"""Broadcast benchmark: one channel, N subscribed sockets, M HTTP publishes.

Measures what the hot path costs: deliveries per second and publish-to-receive latency
(p50/p95/p99) as seen by N raw WebSocket clients. Works against any Pusher-protocol server
(sockudo-py, soketi, Sockudo) given its port and app credentials, or starts sockudo-py itself.

    python bench/broadcast.py --spawn --sockets 500 --messages 200
    python bench/broadcast.py --spawn --compression dedicated   # permessage-deflate on both ends
    python bench/broadcast.py --port 6001 --app-id app-id --key app-key --secret app-secret

With ``--spawn`` it also reports the server's CPU time over the publish phase
(``server_cpu_s``) and per delivery (``server_cpu_us_per_delivery``), from /proc.

``bench/cluster.py`` reuses this module to measure fan-out across sockudo-py nodes.

Bounded: every wait has a timeout and the run stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from sockudo_py.protocol.signatures import sign_api_request  # noqa: E402


def signed_query(secret: str, key: str, path: str, body: bytes, method: str = "POST",
                 **extra: str) -> dict[str, str]:
    """The query string of a signed HTTP API request (``body_md5`` only with a body)."""
    params = {
        "auth_key": key,
        "auth_timestamp": str(int(time.time())),
        "auth_version": "1.0",
        **extra,
    }
    if body:
        params["body_md5"] = hashlib.md5(body).hexdigest()
    params["auth_signature"] = sign_api_request(secret, method, path, params)
    return params


async def subscriber(url: str, channel: str, ready: asyncio.Event, counter: list[int],
                     latencies: list[float], expected: int, done: asyncio.Event,
                     compression: str | None = None) -> None:
    async with websockets.connect(url, max_queue=None, compression=compression) as ws:
        await ws.recv()  # connection_established
        await ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": channel}}))
        await ws.recv()  # subscription_succeeded
        counter[0] += 1
        if counter[0] == counter[1]:
            ready.set()
        received = 0
        while received < expected:
            frame = json.loads(await ws.recv())
            if frame.get("event") == "bench":
                sent = json.loads(frame["data"])["t"]
                latencies.append(time.time() - sent)
                received += 1
        counter[2] += 1
        if counter[2] == counter[1]:
            done.set()
        await done.wait()


async def run(args: argparse.Namespace, publish_port: int | None = None,
              subscribe_ports: Sequence[int] = (),
              before_publish: Callable[[], Awaitable[None]] | None = None,
              server_pid: int | None = None) -> dict[str, float]:
    """Subscribe ``args.sockets`` sockets, spread round-robin over ``subscribe_ports``, then
    publish ``args.messages`` events on ``publish_port`` (both default to ``args.port``);
    ``before_publish`` runs once every socket is subscribed. With ``server_pid``, the CPU
    time that process spent over the publish phase is reported too. The sockets offer
    permessage-deflate unless ``args.compression`` is ``disabled``."""
    publish_port = publish_port or args.port
    subscribe_ports = list(subscribe_ports) or [args.port]
    path = f"/apps/{args.app_id}/events"
    ready, done = asyncio.Event(), asyncio.Event()
    counter = [0, args.sockets, 0]  # subscribed, total, finished
    latencies: list[float] = []
    tasks = []
    offer = None if getattr(args, "compression", "disabled") == "disabled" else "deflate"
    for i in range(args.sockets):
        port = subscribe_ports[i % len(subscribe_ports)]
        ws_url = f"ws://127.0.0.1:{port}/app/{args.key}?protocol=7"
        tasks.append(asyncio.create_task(subscriber(
            ws_url, "bench-channel", ready, counter, latencies, args.messages, done, offer)))
        if len(tasks) % 100 == 0:
            await asyncio.sleep(0.05)
    await asyncio.wait_for(ready.wait(), 60)
    if before_publish is not None:
        await before_publish()
    interval = 1 / args.rate if args.rate else 0
    cpu_start = cpu_seconds(server_pid)
    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{publish_port}") as http:
        for _ in range(args.messages):
            body = json.dumps({"name": "bench", "channel": "bench-channel",
                               "data": json.dumps({"t": time.time(), "pad": "x" * args.size})}
                              ).encode()
            response = await http.post(path, content=body,
                                       params=signed_query(args.secret, args.key, path, body),
                                       headers={"content-type": "application/json"})
            response.raise_for_status()
            if interval:
                await asyncio.sleep(interval)
        try:
            await asyncio.wait_for(done.wait(), args.timeout)
        except TimeoutError:
            raise SystemExit(
                f"timed out after {args.timeout} s: {len(latencies)} of "
                f"{args.sockets * args.messages} deliveries, {counter[2]} of {args.sockets} "
                "sockets got every message") from None
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds(server_pid) - cpu_start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    server_cpu = {} if server_pid is None else {
        "server_cpu_s": round(cpu, 3),
        "server_cpu_us_per_delivery": round(cpu / len(latencies) * 1e6, 2),
    }
    return {
        "sockets": args.sockets,
        "messages": args.messages,
        "deliveries": len(latencies),
        "seconds": round(elapsed, 3),
        "deliveries_per_s": round(len(latencies) / elapsed),
        "p50_ms": round(q[49] * 1000, 2),
        "p95_ms": round(q[94] * 1000, 2),
        "p99_ms": round(q[98] * 1000, 2),
        **server_cpu,
    }


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc; 0 without a pid)."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spawn(port: int, config: dict[str, Any] | None = None,
          log: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``python -m sockudo_py --config <tmp json> --port port`` with the bench app and
    ``config``'s top-level sections (default: metrics off); return once ``/up`` says OK
    (15 s at most, else kill it and exit). Its output goes to ``log`` if given."""
    config = {"host": "127.0.0.1", "metrics": {"enabled": False},
              "app_manager": {"array": {"apps": [
                  {"id": "app-id", "key": "app-key", "secret": "app-secret"}]}},
              **(config or {})}
    if not port_free(port):
        raise SystemExit(f"port {port} is in use")
    fd, name = tempfile.mkstemp(prefix=f"sockudo-bench-{port}-", suffix=".json")
    with os.fdopen(fd, "w") as file:
        json.dump(config, file)
    try:
        with open(log or os.devnull, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "sockudo_py", "--config", name, "--port", str(port)],
                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        status = "no answer"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/up", timeout=1) as up:
                    status = up.read().decode()
                if status == "OK":
                    return proc
            except OSError:
                pass
            time.sleep(0.1)
        exited = proc.poll()
        stop(proc)
        reason = f"exited with {exited}" if exited is not None else f"/up: {status}"
        raise SystemExit(f"sockudo-py on port {port} did not start ({reason})"
                         + (f"; log {log}" if log else ""))
    finally:
        os.unlink(name)


def port_free(port: int) -> bool:
    """Nothing listens on ``port`` (connections left in TIME_WAIT do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM ``proc`` (by PID); SIGKILL it if it is still there after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    """The app credentials and load options shared with ``bench/cluster.py``."""
    parser.add_argument("--app-id", default="app-id")
    parser.add_argument("--key", default="app-key")
    parser.add_argument("--secret", default="app-secret")
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50, help="publishes per second (0: max)")
    parser.add_argument("--size", type=int, default=100, help="payload padding in bytes")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--compression", default="disabled",
                        help="websocket.compression of a spawned server (Sockudo's values, "
                             "e.g. dedicated); the sockets offer permessage-deflate unless "
                             "disabled")


def run_client(coroutine: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run the load client (on uvloop when installed)."""
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(coroutine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=6001)
    add_load_arguments(parser)
    parser.add_argument("--spawn", action="store_true", help="start sockudo-py on --port")
    args = parser.parse_args()
    config = {"websocket": {"compression": args.compression}}
    proc = spawn(args.port, config) if args.spawn else None
    try:
        print(json.dumps(run_client(run(args, server_pid=proc and proc.pid))))
    finally:
        if proc is not None:
            stop(proc)


if __name__ == "__main__":
    main()
