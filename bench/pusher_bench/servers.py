"""The server under test: one given by URL (and PID), or a fresh sockudo-py or soketi that
this tool starts and stops again (by PID, only what it started)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from .procstat import ProcTree, descendants

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
KINDS = ("sockudo-py", "soketi")
BENCH_APP = {
    "id": "app-id",
    "key": "app-key",
    "secret": "app-secret",
    "enable_client_messages": True,
    "max_connections": 0,
    "max_client_events_per_second": 0,
}
"""The app a spawned sockudo-py serves: soketi's start.sh defaults, limits off."""
ALL_CPUS = os.sched_getaffinity(0)
"""The CPUs this tool may use when it starts (before any ``--pin-client``)."""


@dataclass
class Server:
    """A server to load: its URLs and app, and the PID whose tree /proc is read for CPU and
    RSS (None: not measured). ``proc`` is set only for a server this tool started."""

    name: str
    version: str
    ws_url: str
    http_url: str
    app_id: str = "app-id"
    key: str = "app-key"
    secret: str = "app-secret"
    pid: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def tree(self) -> ProcTree | None:
        return None if self.pid is None else ProcTree(self.pid)

    def stop(self) -> None:
        """Stop a started server: SIGTERM its PID, SIGKILL after 10 s, then SIGKILL any of
        its descendants left behind. A server given by URL is left alone."""
        if self.proc is None:
            return
        pid = self.pid or self.proc.pid
        family = [(p, _start_time(p)) for p in descendants(pid)]
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        for child, started in family:
            if started is not None and _start_time(child) == started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
        self.proc = None

    def log_tail(self, lines: int = 20) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _start_time(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (tells a reused PID apart)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (FileNotFoundError, ProcessLookupError):
        return None


def port_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:``port``."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def soketi_dir() -> Path:
    """``shared/peers/soketi`` beside the repository (or beside one of its parents, for a
    git worktree); override with ``SOKETI_DIR``."""
    if "SOKETI_DIR" in os.environ:
        return Path(os.environ["SOKETI_DIR"])
    for parent in ROOT.parents:
        candidate = parent / "shared" / "peers" / "soketi"
        if candidate.is_dir():
            return candidate
    return ROOT.parent / "shared" / "peers" / "soketi"


def sockudo_version() -> str:
    try:
        version = package_version("sockudo-py")
    except PackageNotFoundError:
        version = "?"
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"{version} ({commit})" if commit else version


def soketi_version(directory: Path) -> str:
    package = directory / "node_modules" / "@soketi" / "soketi" / "package.json"
    try:
        return str(json.loads(package.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "?"


def sockudo_config(
    compression: str = "disabled", metrics_port: int | None = None, **sections: Any
) -> dict[str, Any]:
    """The config of a spawned sockudo-py: loopback, the bench app, metrics off (on
    ``metrics_port`` if given), ``websocket.compression``, and ``sections`` on top."""
    metrics: dict[str, Any] = {"enabled": False}
    if metrics_port is not None:
        metrics = {"enabled": True, "host": "127.0.0.1", "port": metrics_port}
    return {
        "host": "127.0.0.1",
        "metrics": metrics,
        "app_manager": {"array": {"apps": [BENCH_APP]}},
        "websocket": {"compression": compression},
        **sections,
    }


def spawn_sockudo(
    port: int,
    config: dict[str, Any],
    log: Path | None = None,
    args: Sequence[str] = (),
    cpus: set[int] | None = None,
) -> Server:
    """Start ``python -m sockudo_py --config <tmp json> --port port [args]`` (on ``cpus``)
    and return once ``/up`` answers OK; raise SystemExit with the reason otherwise."""
    fd, name = tempfile.mkstemp(prefix=f"sockudo-bench-{port}-", suffix=".json")
    with os.fdopen(fd, "w") as file:
        json.dump(config, file)
    try:
        command = [sys.executable, "-m", "sockudo_py", "--config", name, "--port", str(port)]
        proc = _popen([*command, *args], ROOT, None, log, cpus)
        server = Server(
            "sockudo-py",
            sockudo_version(),
            f"ws://127.0.0.1:{port}",
            f"http://127.0.0.1:{port}",
            pid=proc.pid,
            proc=proc,
            log=log,
        )
        _wait_up(server, f"http://127.0.0.1:{port}/up")
        return server
    finally:
        os.unlink(name)


def spawn_soketi(
    port: int,
    metrics_port: int,
    cluster_port: int,
    log: Path | None = None,
    cpus: set[int] | None = None,
    metrics: bool = False,
) -> Server:
    """Start soketi with its ``start.sh`` (user authentication off, so public-only sockets
    stay; metrics off unless ``metrics``; a 0.5 s shutdown grace), and return once ``/``
    answers OK. The measured PID is the node process (start.sh execs it)."""
    directory = soketi_dir()
    if not (directory / "node_modules").is_dir():
        raise SystemExit(f"soketi is not installed: run {directory / 'install.sh'} once")
    env = {
        **os.environ,
        "USER_AUTH": "false",
        "CLUSTER_PORT": str(cluster_port),
        "SOKETI_METRICS_ENABLED": "true" if metrics else "false",
        "SOKETI_SHUTDOWN_GRACE_PERIOD": "500",
    }
    proc = _popen(
        [str(directory / "start.sh"), str(port), str(metrics_port)], directory, env, log, cpus
    )
    server = Server(
        "soketi",
        soketi_version(directory),
        f"ws://127.0.0.1:{port}",
        f"http://127.0.0.1:{port}",
        pid=proc.pid,
        proc=proc,
        log=log,
    )
    _wait_up(server, f"http://127.0.0.1:{port}/")
    server.pid = _node_pid(proc.pid)
    return server


def _node_pid(pid: int) -> int:
    """``pid`` if it runs node (start.sh exec'd it), else its first node descendant."""
    for candidate in (pid, *descendants(pid)):
        with contextlib.suppress(OSError):
            if os.path.basename(os.readlink(f"/proc/{candidate}/exe")).startswith("node"):
                return candidate
    return pid


def _popen(
    command: list[str],
    cwd: Path,
    env: dict[str, str] | None,
    log: Path | None,
    cpus: set[int] | None,
) -> subprocess.Popen[bytes]:
    """Start ``command`` with its output in ``log`` (or nowhere), on ``cpus`` if given,
    else on every CPU this tool may use."""
    affinity = cpus or ALL_CPUS
    with open(log or os.devnull, "wb") as out:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.sched_setaffinity(0, affinity),
        )


def _wait_up(server: Server, url: str) -> None:
    """Poll ``url`` until it answers OK (``START_TIMEOUT`` at most); on failure stop the
    server and raise SystemExit with its log's tail."""
    assert server.proc is not None
    status = "no answer"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and server.proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                status = answer.read().decode()
            if status == "OK":
                return
        except OSError:
            pass
        time.sleep(0.1)
    exited = server.proc.poll()
    server.stop()
    reason = f"exited with {exited}" if exited is not None else f"{url}: {status}"
    raise SystemExit(f"{server.name} did not start ({reason})\n{server.log_tail()}")


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    """``server`` for the block; stopped afterwards if this tool started it."""
    try:
        yield server
    finally:
        server.stop()
