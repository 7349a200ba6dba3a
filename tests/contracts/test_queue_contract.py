"""The queue contract (sockudo_py/queue/base.py), run unchanged against every driver of
``QUEUES`` (conftest.py): memory, redis (127.0.0.1:6379) and sqs (moto)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from conftest import QueueFactory

from sockudo_py.queue import Job, Queue, Reject

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def queue(queue_factory: QueueFactory) -> AsyncIterator[Queue]:
    q = queue_factory.make()
    await q.start()
    yield q


@pytest.fixture
def name(uid: str) -> str:
    return f"jobs-{uid}"


async def wait_until(check: Callable[[], bool], timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def consuming(queue: Queue, name: str, handler: Any, **options: Any) -> asyncio.Task[None]:
    return asyncio.ensure_future(queue.consume(name, handler, **options))


async def test_enqueue_consume_ack(queue: Queue, name: str) -> None:
    payloads = [
        {"app_id": "a", "payload": {"time_ms": i, "events": [{"name": "x"}]}} for i in range(3)
    ]
    ids = [await queue.enqueue(name, p) for p in payloads]
    assert len(set(ids)) == 3
    got: list[Job] = []

    async def handler(job: Job) -> None:
        got.append(job)

    task = consuming(queue, name, handler, concurrency=3)
    await wait_until(lambda: len(got) == 3)
    assert sorted(j.id for j in got) == sorted(ids)
    assert sorted(j.payload["payload"]["time_ms"] for j in got) == [0, 1, 2]
    assert all(j.attempts == 1 and j.queue == name for j in got)
    assert all(abs(j.enqueued_at - time.time()) < 30 for j in got)
    await asyncio.sleep(2.2)  # past a lease / visibility timeout: acked jobs never come back
    assert len(got) == 3
    await queue.stop()
    await asyncio.wait_for(task, 5)


async def test_a_handler_that_raises_gets_the_job_again(queue: Queue, name: str) -> None:
    job_id = await queue.enqueue(name, {"n": 1})
    seen: list[int] = []

    async def handler(job: Job) -> None:
        seen.append(job.attempts)
        if job.attempts < 3:
            raise RuntimeError("receiver down")

    consuming(queue, name, handler)
    await wait_until(lambda: len(seen) == 3)
    assert seen == [1, 2, 3]
    await asyncio.sleep(0.5)
    assert seen == [1, 2, 3]  # acknowledged on the third
    assert await queue.dead_letters(name) == []
    assert job_id


async def test_delayed_jobs_wait(queue: Queue, name: str) -> None:
    await queue.enqueue(name, {"late": True}, delay=2)
    await queue.enqueue(name, {"late": False})
    got: list[tuple[float, bool]] = []
    start = time.monotonic()

    async def handler(job: Job) -> None:
        got.append((time.monotonic() - start, job.payload["late"]))

    consuming(queue, name, handler, concurrency=2)
    await wait_until(lambda: len(got) == 2)
    assert got[0][1] is False and got[0][0] < 1.5
    assert got[1][1] is True and got[1][0] >= 1.8


async def test_failures_end_in_dead_letters_and_replay(queue: Queue, name: str) -> None:
    failing = await queue.enqueue(name, {"kind": "failing"})
    rejected = await queue.enqueue(name, {"kind": "rejected"})
    attempts: dict[str, list[int]] = {failing: [], rejected: []}
    enqueued_at: dict[str, list[float]] = {failing: [], rejected: []}
    healed = False

    async def handler(job: Job) -> None:
        attempts[job.id].append(job.attempts)
        enqueued_at[job.id].append(job.enqueued_at)
        if job.payload["kind"] == "rejected":
            raise Reject("410 gone")
        if not healed:
            raise ValueError("boom")

    consuming(queue, name, handler, concurrency=2, max_attempts=3)
    await wait_until(lambda: len(attempts[failing]) == 3 and len(attempts[rejected]) == 1)
    assert attempts[failing] == [1, 2, 3]

    async def two_dead() -> list[Job]:
        deadline = time.monotonic() + 5
        while True:
            dead = await queue.dead_letters(name)
            if len(dead) == 2 or time.monotonic() > deadline:
                return dead
            await asyncio.sleep(0.1)

    dead = {job.id: job for job in await two_dead()}
    assert set(dead) == {failing, rejected}
    assert dead[failing].attempts == 3 and "boom" in (dead[failing].error or "")
    assert dead[failing].payload == {"kind": "failing"}
    assert dead[rejected].attempts == 1 and "410 gone" in (dead[rejected].error or "")
    await asyncio.sleep(0.5)
    assert len(attempts[failing]) == 3  # no more deliveries once dead

    healed = True
    await asyncio.sleep(1.1)  # so that a fresh enqueued_at shows
    assert await queue.replay(name, failing) is True
    assert await queue.replay(name, "no-such-job") is False
    await wait_until(lambda: len(attempts[failing]) == 4)
    assert attempts[failing][-1] == 1  # counted afresh
    assert enqueued_at[failing][-1] >= enqueued_at[failing][0] + 1  # a fresh retry window
    remaining = await queue.dead_letters(name)
    assert [job.id for job in remaining] == [rejected]


async def test_concurrency_is_bounded(queue: Queue, name: str) -> None:
    for i in range(6):
        await queue.enqueue(name, {"i": i})
    running = 0
    peak = 0
    done: list[int] = []

    async def handler(job: Job) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.2)
        running -= 1
        done.append(job.payload["i"])

    consuming(queue, name, handler, concurrency=2)
    await wait_until(lambda: len(done) == 6)
    assert peak == 2
    assert sorted(done) == list(range(6))


async def test_stop_leaves_pending_and_in_flight_jobs_for_the_next_consumer(
    queue_factory: QueueFactory, name: str
) -> None:
    first = queue_factory.make()
    await first.start()
    ids = {await first.enqueue(name, {"i": i}) for i in range(5)}
    started = asyncio.Event()

    async def stuck(job: Job) -> None:
        started.set()
        await asyncio.Event().wait()  # never finishes: cancelled at stop, job released

    task = consuming(first, name, stuck, concurrency=1)
    await asyncio.wait_for(started.wait(), 8)
    t0 = time.monotonic()
    await first.stop()
    assert time.monotonic() - t0 < 3  # shutdown_timeout_ms 300, then cancelled
    await asyncio.wait_for(task, 5)

    second = queue_factory.make() if queue_factory.durable else first
    await second.start()
    got: set[str] = set()

    async def handler(job: Job) -> None:
        got.add(job.id)

    consuming(second, name, handler, concurrency=5)
    await wait_until(lambda: got == ids)
