"""A client process: holds a share of the connections and runs the phases the parent asks
for over a pipe. Each command is answered by one reply, a ``(name, dict)`` tuple.

Commands: ``connect`` (open and subscribe every connection), ``expect`` (count bench events
until the expected number arrived), ``presence`` (send client events in a closed loop for a
while), ``close``. Every phase has a deadline and reports what it got by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from .procstat import own_cpu_seconds
from .wire import client_event_frame
from .wsclient import Endpoint, PusherSocket, Sink

POLL = 0.005
Message = tuple[str, dict[str, Any]]
Reply = Message


@dataclass(frozen=True)
class ConnSpec:
    """One connection: the endpoint it uses (index), its channels, its presence user and
    room (presence rooms are never split between processes), whether it records latency."""

    endpoint: int
    channels: tuple[str, ...]
    user_id: str | None = None
    room: int | None = None
    record: bool = True


@dataclass(frozen=True)
class WorkerSpec:
    endpoints: tuple[Endpoint, ...]
    conns: tuple[ConnSpec, ...]
    concurrency: int


def run_worker(ctrl: Connection, spec: WorkerSpec, loop_factory: Callable[[], Any]) -> None:
    """The process body: serve commands until ``close`` (or the pipe closes)."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(Worker(ctrl, spec).serve())


async def recv_message(link: Connection, timeout: float | None = None) -> Message:
    """The next ``(name, body)`` from ``link``, waiting without blocking the event loop
    (``timeout`` seconds at most: TimeoutError). EOFError if the other end is gone."""
    loop = asyncio.get_running_loop()
    readable: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not readable.done():
            readable.set_result(None)

    loop.add_reader(link.fileno(), ready)
    try:
        await asyncio.wait_for(readable, timeout)
    finally:
        loop.remove_reader(link.fileno())
        os.set_blocking(link.fileno(), True)  # uvloop's add_reader made it non-blocking
    message: Message = link.recv()
    return message


class Worker:
    """The connections of one client process and the phases run on them."""

    def __init__(self, ctrl: Connection, spec: WorkerSpec) -> None:
        self.ctrl = ctrl
        self.spec = spec
        self.sink = Sink()
        self.connected: list[tuple[ConnSpec, PusherSocket]] = []

    async def serve(self) -> None:
        handlers: dict[str, Callable[..., Awaitable[Reply]]] = {
            "connect": self.connect,
            "expect": self.expect,
            "presence": self.presence,
        }
        while True:
            try:
                name, args = await recv_message(self.ctrl)
            except EOFError:
                name, args = "close", {}
            if name == "close":
                for _, sock in self.connected:
                    sock.close()
                await asyncio.sleep(0.1)  # let the close frames go out
                with contextlib.suppress(OSError):  # the parent may be gone
                    self.ctrl.send(("closed", {}))
                return
            self.ctrl.send(await handlers[name](**args))

    async def connect(self, deadline: float) -> Reply:
        """Open every connection (``concurrency`` at a time) and wait for its
        subscriptions, until wall-clock ``deadline``."""
        started, cpu = time.time(), own_cpu_seconds()
        gate = asyncio.Semaphore(self.spec.concurrency)
        last_ok = [started]

        async def one(conn: ConnSpec) -> None:
            async with gate:
                sock = await self._open(conn, deadline)
            if sock is not None:
                self.connected.append((conn, sock))
                last_ok[0] = time.time()

        await asyncio.gather(*(one(conn) for conn in self.spec.conns))
        return "connected", {
            "ok": len(self.connected),
            "deflated": sum(sock.deflated for _, sock in self.connected),
            "failed": len(self.spec.conns) - len(self.connected),
            "started": started,
            "finished": last_ok[0],
            "cpu_s": own_cpu_seconds() - cpu,
            "errors": dict(self.sink.errors.most_common(5)),
        }

    async def _open(self, conn: ConnSpec, deadline: float) -> PusherSocket | None:
        """One connection subscribed to its channels, or None (counted in ``sink.errors``)."""
        endpoint = self.spec.endpoints[conn.endpoint]
        loop = asyncio.get_running_loop()
        sock: PusherSocket | None = None
        try:
            async with asyncio.timeout_at(loop.time() + deadline - time.time()):
                _, sock = await loop.create_connection(
                    lambda: PusherSocket(
                        endpoint, self.sink, conn.channels, conn.user_id, conn.record
                    ),
                    endpoint.host,
                    endpoint.port,
                )
                await sock.ready
            return sock
        except (OSError, TimeoutError) as exc:  # ConnectionError: counted by the socket
            if sock is None or isinstance(exc, TimeoutError):
                self.sink.errors[f"{type(exc).__name__}: {exc}"[:160]] += 1
            if sock is not None:
                sock.close()
            return None

    async def expect(self, per_channel: dict[str, int], deadline: float) -> Reply:
        """Arm (reply ``armed``), then count bench events until every connection got what
        ``per_channel`` says its channels get, or until ``deadline``."""
        sockets = [sock for _, sock in self.connected]
        wanted = [sum(per_channel.get(c, 0) for c in sock.channels) for sock in sockets]
        expected = sum(wanted)
        for sock in sockets:
            sock.received = 0
        self.sink.reset()
        self.ctrl.send(("armed", {}))
        started, cpu = time.time(), own_cpu_seconds()
        while self.sink.deliveries < expected and time.time() < deadline:
            await asyncio.sleep(POLL)
        complete = sum(sock.received >= want for sock, want in zip(sockets, wanted, strict=True))
        return "received", self._figures(started, cpu) | {
            "expected": expected,
            "complete_connections": complete,
        }

    async def presence(self, seconds: float, window: int, drain: float, padding: str) -> Reply:
        """Each room's members send client events round-robin, keeping at most ``window``
        events per room not yet delivered to every other member, for ``seconds``; then wait
        (``drain`` seconds at most) for the last ones to arrive."""
        rooms = self._rooms(window, padding)
        self.sink.reset()
        started, cpu = time.time(), own_cpu_seconds()
        for room in rooms:
            room.start()
        await asyncio.sleep(seconds)
        stopped = time.time()
        for room in rooms:
            room.active = False
        drain_until = stopped + drain
        while any(room.outstanding() for room in rooms) and time.time() < drain_until:
            await asyncio.sleep(POLL)
        return "routed", self._figures(started, cpu) | {
            "stopped": stopped,
            "sent": sum(room.sent for room in rooms),
            "expected": sum(room.sent * room.fanout for room in rooms),
            "rooms": len(rooms),
        }

    def _rooms(self, window: int, padding: str) -> list[Room]:
        members: dict[int, list[PusherSocket]] = {}
        for conn, sock in self.connected:
            if conn.room is not None:
                members.setdefault(conn.room, []).append(sock)
        rooms = [Room(group, window, padding) for group in members.values() if len(group) > 1]
        for room in rooms:
            for sock in room.members:
                sock.room = room
        return rooms

    def _figures(self, started: float, cpu: float) -> dict[str, Any]:
        sink = self.sink
        return {
            "deliveries": sink.deliveries,
            "started": started,
            "last_delivery": sink.last_ns / 1e9 if sink.last_ns else started,
            "finished": time.time(),
            "cpu_s": own_cpu_seconds() - cpu,
            "latencies": sink.latencies.tobytes(),
            "errors": dict(sink.errors.most_common(5)),
            "closes": dict(sink.closes),
        }


class Room:
    """A presence room's closed loop: its members take turns sending a client event while
    fewer than ``window`` events are not yet delivered to all ``fanout`` other members."""

    def __init__(self, members: list[PusherSocket], window: int, padding: str) -> None:
        self.members = members
        self.channel = members[0].channels[0]
        self.fanout = len(members) - 1
        self.window = window
        self.padding = padding
        self.sent = 0
        self.received = 0
        self.active = False
        self._turn = 0

    def start(self) -> None:
        self.active = True
        self._pump()

    def outstanding(self) -> int:
        """Deliveries still due for the events sent so far."""
        return self.sent * self.fanout - self.received

    def delivered(self) -> None:
        self.received += 1
        if self.active:
            self._pump()

    def _pump(self) -> None:
        limit = self.window * self.fanout
        while self.sent * self.fanout - self.received < limit:
            self.members[self._turn].send(client_event_frame(self.channel, self.padding))
            self._turn = (self._turn + 1) % len(self.members)
            self.sent += 1
