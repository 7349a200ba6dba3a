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
    return asyncio.get_running_loop().create_task(_carry_on(coro, waiting))


async def _carry_on(coro: Handling, waiting: Any) -> None:
    await _Continuation(coro, waiting)


class _Continuation:
    """Awaitable that hands the task what ``coro`` was waiting on, then resumes ``coro``
    with whatever the task sends or throws (a result, or a cancellation)."""

    __slots__ = ("coro", "waiting")

    def __init__(self, coro: Handling, waiting: Any) -> None:
        self.coro, self.waiting = coro, waiting

    def __await__(self) -> Generator[Any, Any, None]:
        coro, waiting = self.coro, self.waiting
        while True:
            try:
                sent = yield waiting
            except BaseException as exc:  # a cancellation: the coroutine decides
                try:
                    waiting = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting = coro.send(sent)
                except StopIteration:
                    return
