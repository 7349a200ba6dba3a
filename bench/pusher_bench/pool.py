"""The client processes of one run, driven from the parent's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from .worker import ConnSpec, WorkerSpec, recv_message, run_worker
from .wsclient import Endpoint

REPLY_MARGIN = 30.0
"""How long past a phase's own deadline a silent client process is waited for."""


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's event loop when installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def split(conns: Sequence[ConnSpec], procs: int) -> list[list[ConnSpec]]:
    """Deal connections to ``procs`` processes: round-robin, a presence room whole."""
    shares: list[list[ConnSpec]] = [[] for _ in range(procs)]
    for i, conn in enumerate(conns):
        shares[(conn.room if conn.room is not None else i) % procs].append(conn)
    return [share for share in shares if share]


class ClientPool:
    """``procs`` forked client processes sharing ``conns``. Create it before the parent's
    event loop runs (fork), use ``ask``/``arm`` inside it, and ``shutdown`` at the end."""

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        conns: Sequence[ConnSpec],
        procs: int,
        concurrency: int,
    ) -> None:
        context = multiprocessing.get_context("fork")
        self.links: list[Connection] = []
        self.procs: list[multiprocessing.process.BaseProcess] = []
        for share in split(conns, procs):
            spec = WorkerSpec(tuple(endpoints), tuple(share), concurrency)
            parent, child = context.Pipe()
            proc = context.Process(
                target=run_worker, args=(child, spec, loop_factory()), daemon=True
            )
            proc.start()
            child.close()
            self.links.append(parent)
            self.procs.append(proc)

    async def ask(self, name: str, args: dict[str, Any], deadline: float) -> list[dict[str, Any]]:
        """Send command ``name`` with ``args`` to every process; return their replies (which
        a process sends by its wall-clock ``deadline``)."""
        for link in self.links:
            link.send((name, args))
        return [await receive(link, deadline + REPLY_MARGIN) for link in self.links]

    async def arm(self, per_channel: dict[str, int], deadline: float) -> asyncio.Task[Any]:
        """Start an ``expect`` phase: return once every process counts from zero, with a
        task whose result is their final replies."""
        for link in self.links:
            link.send(("expect", {"per_channel": per_channel, "deadline": deadline}))
        for link in self.links:
            await receive(link, time.time() + REPLY_MARGIN)
        return asyncio.ensure_future(
            asyncio.gather(*(receive(link, deadline + REPLY_MARGIN) for link in self.links))
        )

    def shutdown(self) -> None:
        """Close every connection and end the processes (terminate the ones that hang)."""
        for link in self.links:
            with contextlib.suppress(OSError):
                link.send(("close", {}))
        for proc, link in zip(self.procs, self.links, strict=True):
            if link.poll(10):
                with contextlib.suppress(EOFError):
                    link.recv()
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
            link.close()


async def receive(link: Connection, deadline: float) -> dict[str, Any]:
    """The body of the next reply on ``link``, by the wall-clock ``deadline``."""
    try:
        _, body = await recv_message(link, max(0.0, deadline - time.time()))
    except TimeoutError:
        raise RuntimeError("a client process did not answer in time") from None
    except EOFError:
        raise RuntimeError("a client process exited") from None
    return body
