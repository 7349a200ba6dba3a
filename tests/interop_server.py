"""Machinery for end-to-end tests: run sockudo-py as a real process, run Node client scripts.

* :class:`ServerFactory` starts ``python -m sockudo_py --config <tmp config.json> --port P`` on
  free loopback ports, waits for ``GET /up`` to answer 200 (bounded; over https with the
  client context given as ``tls``), and stops every server it started (by PID) on
  :meth:`ServerFactory.close`.
* :func:`run_node` runs a script of ``tests/node`` with one JSON argument, bounded by a
  timeout, and returns the JSON object it printed; :class:`NodeProcess` runs one alongside
  the test, reading its progress lines as they come.

Fixtures using these live in ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import queue
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from child_process import LoggedProcess

NODE_DIR = Path(__file__).resolve().parent / "node"
HOST = "127.0.0.1"

DEFAULT_APP: dict[str, Any] = {
    "id": "app-id",
    "key": "app-key",
    "secret": "app-secret",
    "enabled": True,
    "enable_client_messages": True,
    "enable_user_authentication": True,
    "enable_subscription_count": True,
}

# Environment variables the server reads (Sockudo's names); they would override the test's
# config, so they are removed from the child's environment unless passed explicitly.
_SERVER_ENV_NAMES = {
    "HOST",
    "PORT",
    "DEBUG",
    "ACTIVITY_TIMEOUT",
    "ADAPTER_DRIVER",
    "APP_MANAGER_DRIVER",
    "CACHE_DRIVER",
    "QUEUE_DRIVER",
    "RATE_LIMITER_DRIVER",
    "REDIS_URL",
    "METRICS_ENABLED",
    "METRICS_PORT",
}
_SERVER_ENV_PREFIXES = ("SOCKUDO_", "DATABASE_", "NATS_", "LOG_", "CONSOLE_")


class InteropError(RuntimeError):
    """The harness itself could not do its job (server did not start, script gave no JSON...)."""


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated recursively with ``extra`` (dicts merge, anything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass
class RunningServer(LoggedProcess):
    """A sockudo-py process started by :class:`ServerFactory`."""

    port: int
    metrics_port: int
    apps: list[dict[str, Any]]
    config: dict[str, Any]
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    host: str = HOST
    tls: ssl.SSLContext | None = field(default=None, repr=False)
    """The client context that trusts the server's certificate, when it serves TLS."""

    @property
    def http_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://{self.host}:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}"

    @property
    def app(self) -> dict[str, Any]:
        """The first app."""
        return self.apps[0]

    def node_params(self, app: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        """Parameters for ``tests/node/run.mjs`` pointing at this server and app."""
        app = app or self.app
        return {
            "host": self.host,
            "port": self.port,
            "appId": app["id"],
            "key": app["key"],
            "secret": app["secret"],
            **extra,
        }

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` (a drain may take the grace period)."""
        super().stop(timeout)


class ServerFactory:
    """Start sockudo-py servers in ``directory``; :meth:`close` stops all of them."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.servers: list[RunningServer] = []

    def __call__(
        self,
        extra_config: dict[str, Any] | None = None,
        *,
        apps: list[dict[str, Any]] | None = None,
        app_overrides: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        startup_timeout: float = 15.0,
        tls: ssl.SSLContext | None = None,
        port: int | None = None,
    ) -> RunningServer:
        """Start one server and wait until ``GET /up`` answers 200.

        ``apps`` replaces the default app list; ``app_overrides`` is merged into each app;
        ``extra_config`` is deep-merged into the generated config.json; ``env`` is added to
        the child's environment (after Sockudo's own variables were removed from it);
        ``tls``, for a server with ``ssl.enabled``, is the client context trusting it;
        ``port`` fixes the port (e.g. to restart a server where its clients reconnect).
        """
        port, metrics_port = port or free_port(), free_port()
        while metrics_port == port:
            metrics_port = free_port()
        app_list = [dict(a) for a in (apps if apps is not None else [DEFAULT_APP])]
        if app_overrides:
            app_list = [{**a, **app_overrides} for a in app_list]
        config: dict[str, Any] = {
            "host": HOST,
            "port": port,
            "metrics": {"enabled": True, "host": HOST, "port": metrics_port},
            "app_manager": {"driver": "memory", "array": {"apps": app_list}},
        }
        if extra_config:
            config = deep_merge(config, extra_config)
        n = len(self.servers)
        config_path = self.directory / f"sockudo-config-{n}.json"
        config_path.write_text(json.dumps(config, indent=2))
        log_path = self.directory / f"sockudo-{n}.log"

        child_env = {
            k: v
            for k, v in os.environ.items()
            if k not in _SERVER_ENV_NAMES and not k.startswith(_SERVER_ENV_PREFIXES)
        }
        child_env.update(env or {})
        cmd = [
            sys.executable,
            "-m",
            "sockudo_py",
            "--config",
            str(config_path),
            "--port",
            str(port),
        ]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env,
                cwd=self.directory,
            )
        server = RunningServer(
            port=port,
            metrics_port=int(config.get("metrics", {}).get("port", metrics_port)),
            apps=config["app_manager"]["array"]["apps"],
            config=config,
            config_path=config_path,
            log_path=log_path,
            process=proc,
            tls=tls,
        )
        self.servers.append(server)
        self._wait_up(server, startup_timeout)
        return server

    @staticmethod
    def _wait_up(server: RunningServer, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            code = server.process.poll()
            if code is not None:
                raise InteropError(
                    f"sockudo-py exited with code {code} during start-up "
                    f"(config {server.config_path}); output:\n{server.output()}"
                )
            try:
                up = f"{server.http_url}/up"
                with urllib.request.urlopen(up, timeout=1, context=server.tls) as resp:
                    if resp.status == 200:
                        return
                    last_error = f"GET /up answered {resp.status}"
            except urllib.error.HTTPError as e:
                last_error = f"GET /up answered {e.code}"
            except OSError as e:
                last_error = f"GET /up: {e}"
            time.sleep(0.1)
        server.stop()
        raise InteropError(
            f"sockudo-py not up on {server.http_url} after {timeout} s ({last_error}); "
            f"output:\n{server.output()}"
        )

    def close(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> ServerFactory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- Node scripts


def require_node() -> str:
    """Path of ``node``; raise with a clear message if it or tests/node/node_modules is missing."""
    node = shutil.which("node")
    if node is None:
        raise InteropError("`node` is not on PATH: the interop tests need Node.js (20+)")
    if not (NODE_DIR / "node_modules").is_dir():
        raise InteropError(
            f"{NODE_DIR / 'node_modules'} is missing: run `npm ci` in {NODE_DIR} "
            "(installs pusher-js, laravel-echo and the pusher Node SDK from package-lock.json)"
        )
    return node


def run_node(
    script: str, params: dict[str, Any], timeout: float = 60.0, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``node tests/node/<script> '<json params>'`` and return the JSON object it printed.

    ``env`` is added to the script's environment. The result gets ``returncode`` and
    ``stderr`` added. Raises :class:`InteropError` when the script times out or prints no JSON
    object before it exits.
    """
    node = NodeProcess(script, params, env)
    try:
        return node.result(timeout)
    finally:
        node.close()


class NodeProcess:
    """A script of ``tests/node`` running alongside the test (``run_node`` waits for the end
    instead): :meth:`line` reads the JSON lines it prints as it goes, :meth:`send` writes a
    line to its stdin, :meth:`result` waits for its last line. Blocking, bounded calls (wrap
    them in ``asyncio.to_thread`` in async tests); :meth:`close` kills it if still running."""

    def __init__(
        self, script: str, params: dict[str, Any], env: dict[str, str] | None = None
    ) -> None:
        self.script = script
        self.proc = subprocess.Popen(
            [require_node(), script, json.dumps(params)],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        self._stderr_pump = threading.Thread(target=self._pump_stderr, daemon=True)
        threading.Thread(target=self._pump, daemon=True).start()
        self._stderr_pump.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for text in self.proc.stdout:
            self._lines.put(text)
        self._lines.put(None)

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        self._stderr.extend(self.proc.stderr)

    def line(self, timeout: float) -> dict[str, Any]:
        """The next JSON object the script prints (non-JSON lines are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                text = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise InteropError(f"node {self.script}: no line within {timeout} s") from None
            if text is None:
                raise InteropError(
                    f"node {self.script} exited ({self.proc.wait()}) early; stderr:\n"
                    + "".join(self._stderr)
                )
            try:
                value = json.loads(text)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.write(text + "\n")
            self.proc.stdin.flush()

    def result(self, timeout: float) -> dict[str, Any]:
        """The script's last JSON line, once it exited (with ``returncode`` added)."""
        result = self.line(timeout)
        with contextlib.suppress(InteropError):
            while True:  # the last object printed wins
                result = self.line(0.5)
        result["returncode"] = self.proc.wait(timeout=5)
        self._stderr_pump.join(timeout=5)
        result["stderr"] = "".join(self._stderr)
        return result

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


def describe_failure(result: dict[str, Any], server: RunningServer | None = None) -> str:
    """A readable report of a failed scenario: failed checks, error, frames, server output."""
    parts = [f"scenario {result.get('scenario')!r} failed: {result.get('error')}"]
    failed = [c for c in result.get("checks", []) if not c.get("ok")]
    for c in failed:
        parts.append(f"  FAILED {c.get('name')}: {c.get('detail')}")
    passed = [c.get("name") for c in result.get("checks", []) if c.get("ok")]
    if passed:
        parts.append(f"  passed before that: {passed}")
    for note in result.get("notes", []):
        parts.append(f"  note: {note}")
    for label, info in (result.get("frames") or {}).items():
        parts.append(f"  frames of {label}:")
        parts.extend(f"    {json.dumps(f)}" for f in info.get("frames", []))
        if info.get("errors"):
            parts.append(f"    connection errors: {json.dumps(info['errors'])}")
    if result.get("stderr"):
        parts.append(f"  node stderr:\n{result['stderr'][-4000:]}")
    if server is not None:
        parts.append(f"  server output (tail):\n{server.output()[-4000:]}")
    return "\n".join(parts)


def _text(b: bytes | str | None) -> str:
    if b is None:
        return ""
    return b if isinstance(b, str) else b.decode("utf-8", "replace")
