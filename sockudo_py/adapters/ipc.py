"""The ``ipc`` transport: the worker processes of one server (``workers``) as a cluster.

The supervisor (``sockudo_py.workers``) runs an ``IpcHub`` on a Unix socket; each worker's
adapter connects to it with an ``IpcTransport`` and is one node of the cluster. The hub
relays a message to every other worker (the cluster channel) or to one (a node's channel),
so the workers share state exactly as nodes over Redis or NATS do, with no broker to run.

On the socket every message is a 4-byte big-endian length and that many bytes. A worker's
first message is its node id; then each message is a 2-byte target length, the target
(empty: every other worker) and the data. The hub sends workers the data alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Sequence

from .transport import MessageHandler, Target, Transport

log = logging.getLogger("sockudo_py.adapters")

_LENGTH = struct.Struct("!I")
_TARGET = struct.Struct("!H")
REQUEST_TIMEOUT_MS = 5000
"""How long a worker waits for the others' answers to a cluster query."""
MAX_MESSAGE = 64 * 1024 * 1024
MAX_BACKLOG = 64 * 1024 * 1024
"""Bytes the hub holds for a worker that does not read before it drops the worker (which
reconnects, and the cluster re-introduces it)."""


def _frame(data: bytes) -> bytes:
    return _LENGTH.pack(len(data)) + data


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if size > MAX_MESSAGE:
        raise ConnectionError(f"message of {size} bytes over the limit")
    return await reader.readexactly(size)


class IpcTransport(Transport):
    """One worker's connection to its supervisor's ``IpcHub`` at ``path``."""

    def __init__(self, path: str, prefix: str, node_id: str) -> None:
        super().__init__(prefix, node_id)
        self.path = path
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._on_message: MessageHandler | None = None

    @property
    def name(self) -> str:
        return "ipc"

    async def connect(self, on_message: MessageHandler) -> None:
        await self.close()
        self._reader, self._writer = await asyncio.open_unix_connection(self.path)
        self._on_message = on_message
        self._writer.write(_frame(self.node_id.encode()))
        await self._writer.drain()

    async def run(self) -> None:
        reader, handler = self._reader, self._on_message
        assert reader is not None and handler is not None
        with contextlib.suppress(asyncio.IncompleteReadError):
            while True:
                handler(await _read_frame(reader))

    async def publish(self, messages: Sequence[tuple[Target, bytes]]) -> None:
        writer = self._writer
        if writer is None:
            raise ConnectionError("not connected")
        for target, data in messages:
            name = b"" if target is None else target.encode()
            writer.write(_frame(_TARGET.pack(len(name)) + name + data))
        await writer.drain()

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class IpcHub:
    """The supervisor's relay between its workers' ``IpcTransport``s (see the module)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.workers: dict[str, asyncio.StreamWriter] = {}
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, self.path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self.workers.values()):
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        node_id = ""
        try:
            node_id = (await _read_frame(reader)).decode()
            self.workers[node_id] = writer
            while True:
                self._relay(node_id, await _read_frame(reader))
        except (asyncio.IncompleteReadError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            if self.workers.get(node_id) is writer:
                del self.workers[node_id]
            writer.close()

    def _relay(self, sender: str, message: bytes) -> None:
        (size,) = _TARGET.unpack_from(message)
        target = message[_TARGET.size : _TARGET.size + size].decode()
        framed = _frame(message[_TARGET.size + size :])
        if target:
            writer = self.workers.get(target)
            if writer is not None:
                self._send(target, writer, framed)
            return
        for node_id, writer in list(self.workers.items()):
            if node_id != sender:
                self._send(node_id, writer, framed)

    def _send(self, node_id: str, writer: asyncio.StreamWriter, framed: bytes) -> None:
        if writer.transport.get_write_buffer_size() > MAX_BACKLOG:
            log.warning("worker %s does not read its cluster messages: dropped", node_id)
            writer.transport.abort()
            return
        writer.write(framed)
