"""Throwaway Redis servers for tests: a 3-master Redis Cluster, or one standalone server.

* :func:`start_redis_cluster` (a context manager, usable outside pytest too) starts three
  ``redis-server`` processes with ``--cluster-enabled yes`` on free loopback ports (the port
  and its cluster bus port, port + 10000, both free), each in its own temporary directory
  with no persistence, joins them with ``redis-cli --cluster create ... --cluster-replicas 0``,
  waits until ``CLUSTER INFO`` says ``cluster_state:ok`` on every node, and yields a
  :class:`RedisCluster` (``.seeds`` = ``["127.0.0.1:p1", ...]``). Start-up is bounded by
  ``timeout``; on exit it stops exactly the processes it started (by PID) and removes the
  directories.
* :func:`start_redis_server` does the same for one plain server (e.g. to kill Redis under a
  driver and bring it back on the same port).
* ``redis_cluster`` is the session fixture (registered in ``tests/conftest.py``).
* :func:`delete_keys` removes a test's keys (by prefix) from the shared Redis on 6379.
* Config fragments can hold the markers :data:`REDIS_CLUSTER_NODES` (``[{host, port}, ...]``,
  for ``database.redis.cluster.nodes``) and :data:`REDIS_CLUSTER_SEEDS` (``["host:port", ...]``,
  for ``adapter.cluster.nodes``); ``fragments.resolve`` (alias ``resolve_fragment``) replaces
  them with the session cluster's addresses, starting it on first use, so a static
  ``pytest.param`` can name it.

A missing ``redis-server`` is a failure naming the package to install, never a skip.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from child_process import LoggedProcess
from fragments import Marker, resolve

HOST = "127.0.0.1"
BUS_OFFSET = 10000
# Below Linux's ephemeral range (32768+) for both the port and its bus port, so an outgoing
# connection is unlikely to take one of them between the check and redis-server's bind.
_PORT_RANGE = (15000, 22000)


class RedisClusterError(RuntimeError):
    """A test Redis server or cluster could not be started."""


@dataclass(frozen=True)
class RedisServer(LoggedProcess):
    """One ``redis-server`` process started by this module."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes]
    host: str = HOST

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"


@dataclass(frozen=True)
class RedisCluster:
    """A running Redis Cluster of masters started by :func:`start_redis_cluster`."""

    servers: tuple[RedisServer, ...]

    @property
    def seeds(self) -> list[str]:
        """``["127.0.0.1:p1", ...]``: as in ``adapter.cluster.nodes`` / REDIS_CLUSTER_NODES."""
        return [f"{s.host}:{s.port}" for s in self.servers]

    @property
    def nodes(self) -> list[dict[str, Any]]:
        """``[{"host": ..., "port": ...}, ...]``: as in ``database.redis.cluster.nodes``."""
        return [{"host": s.host, "port": s.port} for s in self.servers]

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.servers]


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RedisClusterError(
            f"`{name}` is not on PATH: the Redis tests need the `redis-server` package "
            "(which brings redis-cli): sudo apt-get install -y redis-server"
        )
    return path


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _pick_port(cluster: bool, taken: set[int]) -> int:
    for _ in range(200):
        port = random.randrange(*_PORT_RANGE)
        if port in taken or not _bindable(port):
            continue
        if cluster and not _bindable(port + BUS_OFFSET):
            continue
        return port
    raise RedisClusterError(f"no free loopback port in {_PORT_RANGE} (and its bus port)")


def redis_cli(port: int, *args: str, timeout: float = 2.0, host: str = HOST) -> str:
    """Run ``redis-cli -h host -p port args...`` and return its stdout ('' on a timeout)."""
    try:
        proc = subprocess.run(
            [_binary("redis-cli"), "-h", host, "-p", str(port), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ""
    return proc.stdout.decode(errors="replace")


def _info_field(text: str, name: str) -> str | None:
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


def _launch(directory: Path, port: int, cluster: bool) -> RedisServer:
    directory.mkdir(parents=True, exist_ok=True)
    args = [
        _binary("redis-server"),
        "--port", str(port),
        "--bind", HOST,
        "--dir", str(directory),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
    ]  # fmt: skip
    if cluster:
        args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
    with open(directory / "redis.log", "wb") as log:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=directory
        )
    return RedisServer(port=port, directory=directory, process=process)


def _wait_ready(server: RedisServer, deadline: float) -> bool:
    """True once ``server`` answers as itself (its ``process_id``), False if it exited."""
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False  # e.g. the port was taken after all: the caller picks another one
        info = redis_cli(server.port, "INFO", "server", timeout=1.0)
        if _info_field(info, "process_id") == str(server.pid):
            return True
        time.sleep(0.05)
    raise RedisClusterError(
        f"redis-server on port {server.port} not ready in time; log:\n{server.output()[-2000:]}"
    )


def _start_server(
    root: Path, started: list[RedisServer], cluster: bool, deadline: float, port: int | None
) -> RedisServer:
    """Start one server (on ``port``, else a free one) and append it to ``started``."""
    for attempt in range(5):
        chosen = port or _pick_port(cluster, {s.port for s in started})
        server = _launch(root / f"node-{len(started)}-{attempt}", chosen, cluster)
        started.append(server)
        if _wait_ready(server, deadline):
            return server
        if port is not None:
            break
    raise RedisClusterError(
        f"redis-server exited during start-up (port {chosen}); log:\n{server.output()[-2000:]}"
    )


@contextlib.contextmanager
def _servers() -> Iterator[tuple[Path, list[RedisServer]]]:
    root = Path(tempfile.mkdtemp(prefix="sockudo-redis-"))
    started: list[RedisServer] = []
    try:
        yield root, started
    finally:
        for server in started:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def start_redis_server(port: int | None = None, timeout: float = 10.0) -> Iterator[RedisServer]:
    """One plain ``redis-server`` on ``port`` (else a free one) for the block."""
    _binary("redis-server")
    with _servers() as (root, started):
        yield _start_server(root, started, False, time.monotonic() + timeout, port)


@contextlib.contextmanager
def start_redis_cluster(masters: int = 3, timeout: float = 20.0) -> Iterator[RedisCluster]:
    """A Redis Cluster of ``masters`` masters (no replicas) for the block; see the module doc."""
    _binary("redis-server")
    _binary("redis-cli")
    deadline = time.monotonic() + timeout
    with _servers() as (root, started):
        servers = tuple(_start_server(root, started, True, deadline, None) for _ in range(masters))
        cluster = RedisCluster(servers)
        try:
            create = subprocess.run(
                [_binary("redis-cli"), "--cluster", "create", *cluster.seeds,
                 "--cluster-replicas", "0", "--cluster-yes"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=max(1.0, deadline - time.monotonic()),
                check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise RedisClusterError(
                f"redis-cli --cluster create timed out (start-up limit {timeout} s)"
            ) from exc
        if create.returncode != 0:
            raise RedisClusterError(
                f"redis-cli --cluster create {' '.join(cluster.seeds)} failed "
                f"({create.returncode}):\n{create.stdout.decode(errors='replace')}"
                f"{create.stderr.decode(errors='replace')}"
            )
        _wait_cluster_ok(cluster, masters, deadline, timeout)
        yield cluster


def _wait_cluster_ok(cluster: RedisCluster, masters: int, deadline: float, timeout: float) -> None:
    pending = list(cluster.servers)
    last = ""
    while pending:
        if time.monotonic() >= deadline:
            logs = "\n".join(f"--- {s.port}:\n{s.output()[-1000:]}" for s in pending)
            raise RedisClusterError(
                f"Redis Cluster {cluster.seeds} not ok after {timeout} s; last CLUSTER INFO "
                f"of port {pending[0].port}:\n{last}\n{logs}"
            )
        server = pending[0]
        last = redis_cli(server.port, "CLUSTER", "INFO", timeout=1.0)
        known = _info_field(last, "cluster_known_nodes")
        if _info_field(last, "cluster_state") == "ok" and known == str(masters):
            pending.pop(0)
        else:
            time.sleep(0.05)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A 3-master Redis Cluster shared by the whole session (started on first use)."""
    with start_redis_cluster() as cluster:
        yield cluster


# --------------------------------------------------------------------------- config fragments


REDIS_CLUSTER_NODES: Any = Marker("REDIS_CLUSTER_NODES", "redis_cluster", lambda c: list(c.nodes))
REDIS_CLUSTER_SEEDS: Any = Marker("REDIS_CLUSTER_SEEDS", "redis_cluster", lambda c: list(c.seeds))
resolve_fragment = resolve  # fills these (and any other marker) from the session fixtures


LOCAL_REDIS = "redis://127.0.0.1:6379/0"
"""The Redis the test command runs (or found) on loopback."""


async def delete_keys(prefix: str, url: str = LOCAL_REDIS) -> None:
    """Delete every key starting with ``prefix`` (a test's unique prefix) at ``url``."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
