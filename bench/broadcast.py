"""Broadcast benchmark: one channel, N subscribed sockets, M HTTP publishes.

Measures what the hot path costs: deliveries per second and publish-to-receive latency
(p50/p95/p99) as seen by N raw WebSocket clients. Works against any Pusher-protocol server
(sockudo-py, soketi, Sockudo) given its port and app credentials, or starts sockudo-py itself.

    python bench/broadcast.py --spawn --sockets 500 --messages 200
    python bench/broadcast.py --port 6001 --app-id app-id --key app-key --secret app-secret

Bounded: every wait has a timeout and the run stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from sockudo_py.protocol.signatures import sign_api_request  # noqa: E402


def signed_query(secret: str, key: str, path: str, body: bytes) -> dict[str, str]:
    params = {
        "auth_key": key,
        "auth_timestamp": str(int(time.time())),
        "auth_version": "1.0",
        "body_md5": hashlib.md5(body).hexdigest(),
    }
    params["auth_signature"] = sign_api_request(secret, "POST", path, params)
    return params


async def subscriber(url: str, channel: str, ready: asyncio.Event, counter: list[int],
                     latencies: list[float], expected: int, done: asyncio.Event) -> None:
    async with websockets.connect(url, max_queue=None, compression=None) as ws:
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


async def run(args: argparse.Namespace) -> dict[str, float]:
    ws_url = f"ws://127.0.0.1:{args.port}/app/{args.key}?protocol=7"
    path = f"/apps/{args.app_id}/events"
    ready, done = asyncio.Event(), asyncio.Event()
    counter = [0, args.sockets, 0]  # subscribed, total, finished
    latencies: list[float] = []
    tasks = []
    for _ in range(args.sockets):
        tasks.append(asyncio.create_task(subscriber(
            ws_url, "bench-channel", ready, counter, latencies, args.messages, done)))
        if len(tasks) % 100 == 0:
            await asyncio.sleep(0.05)
    await asyncio.wait_for(ready.wait(), 60)
    interval = 1 / args.rate if args.rate else 0
    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{args.port}") as http:
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
        await asyncio.wait_for(done.wait(), args.timeout)
    elapsed = time.perf_counter() - start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    return {
        "sockets": args.sockets,
        "messages": args.messages,
        "deliveries": len(latencies),
        "seconds": round(elapsed, 3),
        "deliveries_per_s": round(len(latencies) / elapsed),
        "p50_ms": round(q[49] * 1000, 2),
        "p95_ms": round(q[94] * 1000, 2),
        "p99_ms": round(q[98] * 1000, 2),
    }


def spawn(port: int) -> subprocess.Popen[bytes]:
    config = {"host": "127.0.0.1", "port": port, "metrics": {"enabled": False},
              "app_manager": {"array": {"apps": [
                  {"id": "app-id", "key": "app-key", "secret": "app-secret"}]}}}
    path = Path(f"/tmp/sockudo-bench-{os.getpid()}.json")
    path.write_text(json.dumps(config))
    proc = subprocess.Popen([sys.executable, "-m", "sockudo_py", "--config", str(path)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/up", timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("sockudo-py did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=6001)
    parser.add_argument("--app-id", default="app-id")
    parser.add_argument("--key", default="app-key")
    parser.add_argument("--secret", default="app-secret")
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50, help="publishes per second (0: max)")
    parser.add_argument("--size", type=int, default=100, help="payload padding in bytes")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--spawn", action="store_true", help="start sockudo-py on --port")
    args = parser.parse_args()
    proc = spawn(args.port) if args.spawn else None
    try:
        try:
            import uvloop
            uvloop.install()
        except ImportError:
            pass
        print(json.dumps(asyncio.run(run(args))))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
