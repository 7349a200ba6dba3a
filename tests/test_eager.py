"""sockudo_py.ws.eager.run_eagerly: a coroutine runs at once; a task carries it on only if it
has to wait, and that task behaves like the coroutine's own (results, cancellation, errors)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sockudo_py.ws.eager import run_eagerly


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """The contexts given to the running loop's exception handler while the test runs."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield errors
    loop.set_exception_handler(previous)


async def test_a_coroutine_that_never_waits_runs_to_completion_at_once(
    loop_errors: list[dict[str, Any]],
) -> None:
    log: list[str] = []
    done = asyncio.get_running_loop().create_future()
    done.set_result("ready")

    async def helper() -> str:
        log.append("helper")
        return "value"

    async def work() -> None:
        log.append("start")
        log.append(await helper())  # a coroutine that does not suspend
        log.append(await done)  # a future already done
        log.append("end")

    assert run_eagerly(work()) is None
    assert log == ["start", "helper", "value", "ready", "end"]
    assert loop_errors == []


async def test_a_coroutine_that_waits_is_carried_on_by_a_task() -> None:
    log: list[str] = []
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def work() -> None:
        log.append("before")
        log.append(await future)
        log.append("after")

    task = run_eagerly(work())
    assert isinstance(task, asyncio.Task)
    assert log == ["before"]  # up to the wait, synchronously
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert log == ["before"] and not task.done()
    future.set_result("result")
    await task
    assert log == ["before", "result", "after"]
    assert task.result() is None


async def test_several_waits() -> None:
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[int]] = [loop.create_future() for _ in range(3)]
    log: list[object] = []

    async def work() -> None:
        for future in futures:
            log.append(await future)
            log.append(asyncio.current_task())
        log.append("end")

    task = run_eagerly(work())
    assert task is not None
    assert log == []
    for i, future in enumerate(futures):
        future.set_result(i)
        for _ in range(3):
            await asyncio.sleep(0)
        # the rest of the coroutine runs as the returned task
        assert log[: 2 * (i + 1)] == [j for n in range(i + 1) for j in (n, task)]
        assert task.done() == (i == 2)
    await task
    assert log == [0, task, 1, task, 2, task, "end"]


async def test_sleep_zero_inside() -> None:
    log: list[str] = []

    async def work() -> None:
        log.append("a")
        await asyncio.sleep(0)
        log.append("b")
        await asyncio.sleep(0)
        log.append("c")

    task = run_eagerly(work())
    assert task is not None
    assert log == ["a"]
    await task
    assert log == ["a", "b", "c"]


async def test_an_awaited_sleep() -> None:
    async def work() -> str:
        await asyncio.sleep(0.01)
        return "ignored"

    task = run_eagerly(work())  # type: ignore[arg-type]
    assert task is not None
    await asyncio.wait_for(task, 1)


async def test_cancelling_the_task_cancels_the_coroutine_where_it_waits() -> None:
    log: list[str] = []
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def work() -> None:
        try:
            await future
            log.append("not reached")
        except asyncio.CancelledError:
            log.append("cancelled")
            raise
        finally:
            log.append("finally")

    task = run_eagerly(work())
    assert task is not None
    await asyncio.sleep(0)  # the task is running (waiting on the future)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert log == ["cancelled", "finally"]
    assert future.cancelled()  # what it waited on is cancelled, as for any task


async def test_cancelling_the_task_at_once_cancels_the_coroutine() -> None:
    log: list[str] = []
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def work() -> None:
        try:
            await future
        except asyncio.CancelledError:
            log.append("cancelled")
            raise
        finally:
            log.append("finally")

    task = run_eagerly(work())
    assert task is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log == ["cancelled", "finally"]


async def test_a_coroutine_may_handle_its_cancellation_and_carry_on() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()
    cleanup: asyncio.Future[str] = loop.create_future()
    log: list[str] = []

    async def work() -> None:
        try:
            await future
        except asyncio.CancelledError:
            log.append("cancelled")
            log.append(await cleanup)  # waits again, after the cancellation
        log.append("end")

    task = run_eagerly(work())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0)
    assert log == ["cancelled"] and not task.done()
    cleanup.set_result("cleaned")
    await task  # the coroutine swallowed the cancellation: the task ends normally
    assert not task.cancelled()
    assert log == ["cancelled", "cleaned", "end"]


async def test_an_exception_before_any_wait_goes_to_the_loops_handler(
    loop_errors: list[dict[str, Any]],
) -> None:
    error = ValueError("boom")
    log: list[str] = []

    async def work() -> None:
        log.append("ran")
        raise error

    assert run_eagerly(work()) is None
    assert log == ["ran"]
    assert len(loop_errors) == 1
    assert loop_errors[0]["exception"] is error
    assert loop_errors[0]["message"]


async def test_an_exception_after_a_wait_ends_the_task_with_it(
    loop_errors: list[dict[str, Any]],
) -> None:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    error = KeyError("late")

    async def work() -> None:
        await future
        raise error

    task = run_eagerly(work())
    assert task is not None
    future.set_result(None)
    with pytest.raises(KeyError) as info:
        await task
    assert info.value is error
    assert task.exception() is error
    assert loop_errors == []  # retrieved: nothing for the loop's handler


async def test_an_exception_from_the_awaited_future_reaches_the_coroutine() -> None:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    log: list[str] = []

    async def work() -> None:
        try:
            await future
        except RuntimeError as exc:
            log.append(str(exc))

    task = run_eagerly(work())
    assert task is not None
    future.set_exception(RuntimeError("failed"))
    await task
    assert log == ["failed"]
