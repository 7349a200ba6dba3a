"""Events as the client hands them over, handler registries and bounded event streams."""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

log = logging.getLogger("sockudo_py.client")

Handler = Callable[["Event"], Awaitable[None] | None]
"""A handler: a plain function or an ``async def``, called with the :class:`Event`."""

H = TypeVar("H", bound=Callable[..., Any])


def decode_data(data: Any) -> Any:
    """A frame's ``data``, JSON-decoded when it is JSON text (what pusher-js does); text
    that is not JSON is returned as is."""
    if isinstance(data, str | bytes):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            return data
    return data


@dataclass(frozen=True, slots=True)
class Event:
    """One event: ``name``, the ``channel`` it came on (``None`` for connection events),
    ``data`` decoded from JSON when it was JSON text, ``user_id`` of the sender of a client
    event on a presence channel, and the ``raw`` frame as received."""

    name: str
    channel: str | None = None
    data: Any = None
    user_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


class _Tasks:
    """The tasks of async handlers, kept referenced until they finish."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, awaitable: Awaitable[Any]) -> None:
        async def run() -> None:
            try:
                await awaitable
            except Exception:
                log.exception("an event handler raised")

        task = asyncio.get_running_loop().create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


HANDLER_TASKS = _Tasks()


def call_handler(handler: Callable[..., Any], *args: Any) -> None:
    """Call ``handler``; an async handler runs as its own task. Errors are logged, never
    raised into the client's read loop."""
    try:
        result = handler(*args)
    except Exception:
        log.exception("event handler %r raised", handler)
        return
    if inspect.isawaitable(result):
        HANDLER_TASKS.spawn(result)


class EventStream:
    """``async for event in stream``: the events of one emitter (all, or those named in
    ``names``) through a queue of at most ``maxsize`` events. When the queue is full the
    oldest event is dropped and counted in ``dropped``. The stream ends when its emitter
    closes (channel unsubscribed, client closed) or when :meth:`close` is called."""

    _END = object()

    def __init__(
        self, emitter: Emitter, names: frozenset[str] | None = None, maxsize: int = 100
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self._emitter = emitter
        self._names = names
        self._queue: collections.deque[Any] = collections.deque()
        self._maxsize = maxsize
        self._wakeup = asyncio.Event()
        self._closed = False
        self.dropped = 0

    def _put(self, event: Event) -> None:
        if self._closed or (self._names is not None and event.name not in self._names):
            return
        if len(self._queue) >= self._maxsize:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(event)
        self._wakeup.set()

    def _end(self) -> None:
        self._closed = True
        self._queue.append(self._END)
        self._wakeup.set()

    def close(self) -> None:
        """Stop receiving; a waiting ``async for`` ends."""
        self._emitter._streams.discard(self)
        self._end()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        while not self._queue:
            self._wakeup.clear()
            await self._wakeup.wait()
        item = self._queue.popleft()
        if item is self._END:
            self._emitter._streams.discard(self)
            raise StopAsyncIteration
        event: Event = item
        return event

    async def next(self, timeout: float | None = None) -> Event:
        """The next event, waiting at most ``timeout`` seconds (``TimeoutError``)."""
        return await asyncio.wait_for(self.__anext__(), timeout)

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Emitter:
    """Handlers by event name (``on``/``bind``), handlers for every event (``bind_global``)
    and event streams (``events()`` / ``async for``). Handlers may be plain functions or
    ``async def``; they are called in the order they were bound."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._global: list[Handler] = []
        self._streams: set[EventStream] = set()

    def bind(self, name: str, handler: Handler) -> Handler:
        """Call ``handler(event)`` for every event ``name``; returns ``handler``."""
        self._handlers.setdefault(name, []).append(handler)
        return handler

    def on(self, name: str) -> Callable[[H], H]:
        """Decorator form of :meth:`bind`: ``@channel.on("my-event")``."""

        def decorator(handler: H) -> H:
            self.bind(name, handler)
            return handler

        return decorator

    def unbind(self, name: str | None = None, handler: Handler | None = None) -> None:
        """Remove ``handler`` from ``name``, every handler of ``name``, or (no arguments)
        every named handler."""
        if name is None:
            self._handlers.clear()
        elif handler is None:
            self._handlers.pop(name, None)
        else:
            handlers = self._handlers.get(name, [])
            if handler in handlers:
                handlers.remove(handler)

    def bind_global(self, handler: Handler) -> Handler:
        """Call ``handler(event)`` for every event, whatever its name."""
        self._global.append(handler)
        return handler

    def unbind_global(self, handler: Handler | None = None) -> None:
        if handler is None:
            self._global.clear()
        elif handler in self._global:
            self._global.remove(handler)

    def events(self, *names: str, maxsize: int = 100) -> EventStream:
        """A stream of the events named ``names`` (all events when none are named)."""
        stream = EventStream(self, frozenset(names) if names else None, maxsize)
        self._streams.add(stream)
        return stream

    def __aiter__(self) -> AsyncIterator[Event]:
        return self.events()

    def emit(self, event: Event) -> None:
        for handler in list(self._handlers.get(event.name, ())):
            call_handler(handler, event)
        for handler in list(self._global):
            call_handler(handler, event)
        for stream in list(self._streams):
            stream._put(event)

    def _end_streams(self) -> None:
        for stream in list(self._streams):
            stream._end()
        self._streams.clear()
