"""The ``nats`` adapter's transport: NATS core pub/sub (nats-py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from .transport import MessageHandler, Target, Transport

try:
    import nats
    from nats.aio.client import Client
    from nats.aio.msg import Msg
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the nats adapter needs the nats-py package: pip install 'sockudo-py[nats]'"
    ) from exc

log = logging.getLogger("sockudo_py.adapters")


class NatsTransport(Transport):
    """Subjects ``{prefix}.broadcast`` for the cluster and ``{prefix}.node.{node_id}`` per
    node, on one NATS connection with ``no_echo`` (a node does not hear itself). nats-py's
    own reconnecting is off: the adapter reconnects, so it knows when messages may have been
    missed. Each batch is flushed, so a return means the server has it."""

    def __init__(
        self,
        servers: list[str],
        prefix: str,
        node_id: str,
        *,
        connect_timeout: float = 5.0,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
    ) -> None:
        super().__init__(prefix, node_id)
        self.servers = servers
        self.connect_timeout = connect_timeout
        self._flush_timeout = max(1, round(connect_timeout))
        self.credentials: dict[str, Any] = {"user": username, "password": password, "token": token}
        self._client: Client | None = None
        self._closed: asyncio.Event | None = None

    @property
    def name(self) -> str:
        return "nats"

    def subject(self, target: Target) -> str:
        return f"{self.prefix}.broadcast" if target is None else f"{self.prefix}.node.{target}"

    async def connect(self, on_message: MessageHandler) -> None:
        await self.close()
        closed = self._closed = asyncio.Event()

        async def lost(*_: Any) -> None:
            closed.set()

        async def error(exc: Exception) -> None:
            log.warning("adapter nats: %s", exc)

        async def receive(msg: Msg) -> None:
            on_message(msg.data)

        self._client = await nats.connect(
            self.servers,
            allow_reconnect=False,
            connect_timeout=self._flush_timeout,
            ping_interval=5,
            max_outstanding_pings=2,
            no_echo=True,
            disconnected_cb=lost,
            closed_cb=lost,
            error_cb=error,
            **{key: value for key, value in self.credentials.items() if value},
        )
        await self._client.subscribe(self.subject(None), cb=receive)
        await self._client.subscribe(self.subject(self.node_id), cb=receive)
        await self._client.flush(timeout=self._flush_timeout)

    async def run(self) -> None:
        assert self._closed is not None
        await self._closed.wait()

    async def publish(self, messages: Sequence[tuple[Target, bytes]]) -> None:
        client = self._client
        if client is None or not client.is_connected:
            raise ConnectionError("not connected")
        for target, data in messages:
            await client.publish(self.subject(target), data)
        await client.flush(timeout=self._flush_timeout)

    async def close(self) -> None:
        client, self._client = self._client, None
        if self._closed is not None:
            self._closed.set()
        if client is not None and not client.is_closed:
            with contextlib.suppress(Exception):  # the connection is going away anyway
                await client.close()
