"""Running a coroutine at once, and as a task only if it has to wait.

A client event's ``Adapter.broadcast`` never waits (local delivery, the cluster's outbox),
and a task per client event would cost more than the event. Python 3.12's
``asyncio.eager_task_factory`` does this for every task; this is the same on 3.11, for
coroutines that do not need to be the current task until they first wait
(``asyncio.timeout`` does: drivers' I/O is never run this way).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

Handling = Coroutine[Any, Any, None]


def run_eagerly(coro: Handling) -> asyncio.Task[None] | None:
    """Run ``coro`` now, up to its first real wait. ``None`` if it finished (or raised: the
    coroutines given here handle their own errors, so that is a bug, logged by the loop's
    handler); else the task that carries it on from where it is waiting."""
    try:
        waiting = coro.send(None)
    except StopIteration:
        return None
    except Exception as exc:
        asyncio.get_running_loop().call_exception_handler(
            {"message": "frame handling failed", "exception": exc}
        )
        return None
    return asyncio.get_running_loop().create_task(_Continuation(coro, waiting))


class _Continuation(Coroutine[Any, Any, None]):
    """The rest of ``coro``, already waiting on ``waiting``, as a coroutine for a task: its
    first step hands the task what ``coro`` waits on; then every result or exception the
    task sends or throws (a cancellation, even before that first step) goes into ``coro``."""

    __slots__ = ("coro", "started", "waiting")

    def __init__(self, coro: Handling, waiting: Any) -> None:
        self.coro, self.waiting, self.started = coro, waiting, False

    def send(self, value: Any) -> Any:
        if not self.started:
            self.started = True
            return self.waiting
        return self.coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self.started = True
        return self.coro.throw(typ, val, tb)

    def close(self) -> None:
        self.coro.close()

    def __await__(self) -> Generator[Any, Any, None]:
        raise TypeError("a continuation is run by its task, not awaited")
