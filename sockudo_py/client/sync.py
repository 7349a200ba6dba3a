"""A small synchronous facade for scripts: a thread runs the event loop of a
:class:`~sockudo_py.client.PusherClient`.

    with SyncPusherClient("app-key", host="127.0.0.1", port=6001, tls=False) as client:
        client.subscribe("orders")
        client.bind("orders", "created", lambda event: print(event.data))
        ...

Handlers run on the client's thread: keep them short, or hand the work to your own queue.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .client import ConnectionState, PusherClient
from .events import Event

T = TypeVar("T")


class SyncPusherClient:
    """A :class:`PusherClient` driven from synchronous code. The constructor takes the same
    arguments as ``PusherClient`` (authorizers may be plain functions) and connects, raising
    what ``PusherClient.connect`` raises; every method blocks for at most ``timeout``
    seconds. :meth:`close` (or leaving the ``with`` block) stops the client and its thread."""

    def __init__(self, key: str, *, timeout: float = 30.0, **options: Any) -> None:
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="sockudo-py-client", daemon=True
        )
        self._thread.start()
        self._closed = False

        async def create() -> PusherClient:
            return PusherClient(key, **options)

        self.client: PusherClient = self._call(create())
        try:
            self._call(self.client.connect(timeout))
        except BaseException:
            self.close()
            raise

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if self._closed:
            coro.close()
            raise RuntimeError("the client is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(self.timeout if timeout is None else timeout)

    @property
    def state(self) -> ConnectionState:
        return self.client.state

    @property
    def is_connected(self) -> bool:
        return self.client.is_connected

    @property
    def socket_id(self) -> str | None:
        return self.client.socket_id

    def subscribe(self, channel: str) -> None:
        """Subscribe and wait for the confirmation (raises ``SubscriptionError``)."""
        self._call(self.client.subscribe(channel, timeout=self.timeout))

    def unsubscribe(self, channel: str) -> None:
        self._call(self.client.unsubscribe(channel))

    def bind(self, channel: str | None, event: str, handler: Callable[[Event], Any]) -> None:
        """Call ``handler(event)`` (on the client's thread) for ``event`` on ``channel``, or
        on any channel when ``channel`` is ``None``."""

        async def bind() -> None:
            if channel is None:
                self.client.bind(event, handler)
                return
            target = self.client.channel(channel)
            if target is None:
                raise ValueError(f"not subscribed to {channel!r}: subscribe first")
            target.bind(event, handler)

        self._call(bind())

    def trigger(self, channel: str, event: str, data: Any = None) -> None:
        """Send client event ``event`` (``client-*``) on a subscribed private or presence
        channel."""

        async def trigger() -> None:
            target = self.client.channel(channel)
            if target is None:
                raise ValueError(f"not subscribed to {channel!r}: subscribe first")
            await target.trigger(event, data)

        self._call(trigger())

    def signin(self) -> None:
        self._call(self.client.signin(self.timeout))

    def close(self) -> None:
        """Close the connection and stop the thread (idempotent)."""
        if self._closed:
            return
        try:
            if hasattr(self, "client"):
                self._call(self.client.close())
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(self.timeout)
            if not self._thread.is_alive():
                self._loop.close()

    def __enter__(self) -> SyncPusherClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
