"""The ``redis`` adapter's transport: Redis pub/sub (redis-py asyncio)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from .transport import MessageHandler, Target, Transport

__all__ = ["RedisTransport", "aioredis"]

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the redis adapter needs the redis package: pip install 'sockudo-py[redis]'"
    ) from exc

POLL_SECONDS = 1.0


class RedisTransport(Transport):
    """Pub/sub on one Redis server: channel ``{prefix}#broadcast`` for the cluster and
    ``{prefix}#node:{node_id}`` per node, with Sockudo's default prefix ``sockudo_adapter:``.

    One connection subscribes; publishes go as one pipeline per batch on another, so a
    batch keeps its order. Neither retries: a failure surfaces to the adapter, which
    reconnects."""

    subscribe_command = "subscribe"
    publish_command = "PUBLISH"

    def __init__(
        self,
        url: str,
        prefix: str,
        node_id: str,
        connect_timeout: float = 5.0,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        super().__init__(prefix, node_id)
        self.url = url
        self.connect_timeout = connect_timeout
        self.credentials: dict[str, Any] = {"username": username, "password": password}
        self._client: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._on_message: MessageHandler | None = None

    @property
    def name(self) -> str:
        return "redis"

    def channel(self, target: Target) -> str:
        """The pub/sub channel of ``target`` (``None``: the cluster channel)."""
        return f"{self.prefix}#broadcast" if target is None else f"{self.prefix}#node:{target}"

    async def _server_url(self) -> str:
        """The URL of the server to use (the cluster transport finds its shard's master)."""
        return self.url

    async def connect(self, on_message: MessageHandler) -> None:
        await self.close()
        self._on_message = on_message
        self._client = aioredis.Redis.from_url(
            await self._server_url(),
            socket_connect_timeout=self.connect_timeout,
            socket_timeout=None,
            retry=Retry(NoBackoff(), 0),
            **{key: value for key, value in self.credentials.items() if value},
        )
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        subscribe = getattr(self._pubsub, self.subscribe_command)
        await subscribe(self.channel(None), self.channel(self.node_id))

    async def run(self) -> None:
        pubsub, handler = self._pubsub, self._on_message
        assert pubsub is not None and handler is not None
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_SECONDS)
            if message is None:
                continue
            if message["type"] in ("message", "smessage"):
                handler(message["data"])
            elif message["type"] in ("unsubscribe", "sunsubscribe"):
                return  # the server dropped us (e.g. a slot moved): reconnect

    async def publish(self, messages: Sequence[tuple[Target, bytes]]) -> None:
        client = self._client
        if client is None:
            raise ConnectionError("not connected")
        async with client.pipeline(transaction=False) as pipe:
            for target, data in messages:
                pipe.execute_command(self.publish_command, self.channel(target), data)
            await pipe.execute()

    async def close(self) -> None:
        pubsub, client = self._pubsub, self._client
        self._pubsub = self._client = None
        with contextlib.suppress(Exception):  # the connection is going away anyway
            if pubsub is not None:
                await pubsub.aclose()
        with contextlib.suppress(Exception):
            if client is not None:
                await client.aclose()
