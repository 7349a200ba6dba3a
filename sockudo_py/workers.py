"""Several worker processes serving one port: every core of the machine for one server.

``workers`` (``WORKERS``, ``--workers``) > 1 makes ``sockudo-py`` a supervisor. It starts that
many workers, each the same command with ``SOCKUDO_WORKER`` set to its index; each binds the
port with ``SO_REUSEPORT``, so the kernel spreads new connections over them. Every worker is
a node of a cluster: with ``adapter.driver`` ``local`` the supervisor relays between them over
a Unix socket (``adapters.ipc``), with a cluster adapter they meet over its broker. Either way
a publish to any worker reaches every subscriber, and the HTTP API's answers (channels,
counts, presence members) cover all workers.

Per worker: ``instance.process_id`` gets ``-w<index>``, and the metrics listener is on
``metrics.port + index`` (scrape each). The supervisor forwards SIGTERM/SIGINT to the workers
once, waits ``shutdown_grace_period`` (plus a little) for their graceful drain, and restarts a
worker that dies on its own; a worker that fails at start-up stops them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import uuid

from .adapters.ipc import IpcHub
from .config import Config

log = logging.getLogger("sockudo_py.workers")

WORKER_ENV = "SOCKUDO_WORKER"
"""The worker's index, set by the supervisor for each worker it starts."""
HUB_ENV = "SOCKUDO_WORKERS_HUB"
"""The supervisor's ``IpcHub`` socket, when the workers cluster through it."""
NODE_ENV = "SOCKUDO_WORKERS_NODE"
"""The base of the workers' node ids (``instance.process_id`` or a fresh UUID)."""
START_FAILURES = frozenset({2, 3})
"""Exit statuses of a worker that could not start (configuration, driver, port; uvicorn's
start-up failure): restarting it would fail again."""
RESTART_DELAY = 1.0
PR_SET_PDEATHSIG = 1


def worker_count(config: Config) -> int:
    return config.workers or os.cpu_count() or 1


def worker_index() -> int | None:
    """This process's worker index, if a supervisor started it."""
    value = os.environ.get(WORKER_ENV)
    return int(value) if value is not None and value.isdigit() else None


def worker_config(config: Config, index: int) -> Config:
    """``config`` as worker ``index`` runs it: its own node id and metrics port; the HTTP ->
    HTTPS redirect listener only on worker 0."""
    base = os.environ.get(NODE_ENV) or config.instance.process_id or str(uuid.uuid4())
    updates = {
        "instance": config.instance.model_copy(update={"process_id": f"{base}-w{index}"}),
        "metrics": config.metrics.model_copy(update={"port": config.metrics.port + index}),
    }
    if index:
        updates["ssl"] = config.ssl.model_copy(update={"redirect_http": False})
    return config.model_copy(update=updates)


def hub_path() -> str | None:
    return os.environ.get(HUB_ENV)


def die_with_supervisor() -> None:
    """Ask Linux to SIGTERM this worker if its supervisor dies (best effort elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` that other workers may bind too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def supervise(config: Config, argv: list[str]) -> int:
    """Run ``worker_count(config)`` workers of the command ``argv`` until a signal; the exit
    status."""
    return asyncio.run(Supervisor(config, argv).run())


class Supervisor:
    """Starts, watches and stops the workers (see the module)."""

    def __init__(self, config: Config, argv: list[str]) -> None:
        self.config = config
        self.argv = argv
        self.count = worker_count(config)
        self.stopping = False
        self.failed = False
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self._stop = asyncio.Event()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        directory = tempfile.mkdtemp(prefix="sockudo-py-workers-")
        env = {NODE_ENV: self.config.instance.process_id or str(uuid.uuid4())}
        hub = None
        if self.config.adapter.driver == "local":
            hub = IpcHub(os.path.join(directory, "hub.sock"))
            await hub.start()
            env[HUB_ENV] = hub.path
        log.info("supervisor: starting %d workers on port %s", self.count, self.config.port)
        if self.config.cache.driver == "memory":
            log.warning(
                "supervisor: cache.driver memory is per worker: a cache channel's last event "
                "is kept by the worker that took the publish (use redis to share it)"
            )
        try:
            watchers = [loop.create_task(self._keep(index, env)) for index in range(self.count)]
            await self._stop.wait()
            self.stopping = True
            await self._terminate()
            for watcher in watchers:
                watcher.cancel()
        finally:
            if hub is not None:
                await hub.stop()
            shutil.rmtree(directory, ignore_errors=True)
        return 2 if self.failed else 0

    async def _keep(self, index: int, env: dict[str, str]) -> None:
        """Run worker ``index``, again whenever it dies, until the supervisor stops."""
        while not self.stopping:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "sockudo_py", *self.argv,
                env={**os.environ, **env, WORKER_ENV: str(index)},
                start_new_session=True,  # a terminal's Ctrl-C reaches the supervisor alone
            )  # fmt: skip
            self.processes[index] = process
            code = await process.wait()
            if self.stopping:
                return
            if code in START_FAILURES:
                log.error("supervisor: worker %d failed to start (exit %s): stopping", index, code)
                self.failed = True
                self._stop.set()
                return
            log.error("supervisor: worker %d exited (%s): restarting it", index, code)
            await asyncio.sleep(RESTART_DELAY)

    async def _terminate(self) -> None:
        """SIGTERM every worker once; SIGKILL what is left after the grace period."""
        running = [p for p in self.processes.values() if p.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        grace = self.config.shutdown_grace_period + 2.0
        waits = [asyncio.create_task(process.wait()) for process in running]
        if not waits:
            return
        _, pending = await asyncio.wait(waits, timeout=grace)
        if pending:
            log.warning("supervisor: %d worker(s) still running: killed", len(pending))
            for process in running:
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            await asyncio.wait(pending)
