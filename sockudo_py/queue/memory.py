"""The ``memory`` queue: jobs in this process only.

At most ``reliability.memory_capacity`` jobs (queued, delayed and in flight, all queues
together; dead letters are bounded apart by ``failed_retention``): ``enqueue`` beyond raises
:class:`~sockudo_py.queue.base.QueueFull`. **Everything is lost when the process exits**
(queued jobs and dead letters alike), and only consumers of this process see the jobs: use
``redis`` or ``sqs`` for webhooks that must survive a restart or be shared between nodes.
There are no leases: a job in flight can only be lost with the whole process.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ..config import QueueReliabilityConfig
from .base import Job, Queue, QueueFull


@dataclass
class _Stored:
    job: Job
    in_flight: bool = False


@dataclass
class _Named:
    heap: list[tuple[float, int, str]] = field(default_factory=list)  # (due, seq, id)
    jobs: dict[str, _Stored] = field(default_factory=dict)  # queued + in flight
    dead: OrderedDict[str, Job] = field(default_factory=OrderedDict)  # oldest first
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)


class MemoryQueue(Queue):
    """See the module doc."""

    LEASED = False

    def __init__(self, reliability: QueueReliabilityConfig | None = None) -> None:
        super().__init__(reliability)
        self._queues: dict[str, _Named] = {}
        self._seq = itertools.count()

    def _named(self, name: str) -> _Named:
        named = self._queues.get(name)
        if named is None:
            named = self._queues[name] = _Named()
        return named

    def _push(self, named: _Named, job_id: str, delay: float) -> None:
        heapq.heappush(named.heap, (time.monotonic() + max(0.0, delay), next(self._seq), job_id))
        named.wakeup.set()

    async def enqueue(self, name: str, payload: dict[str, Any], delay: float = 0) -> str:
        total = sum(len(q.jobs) for q in self._queues.values())
        if total >= self.reliability.memory_capacity:
            raise QueueFull(
                f"memory queue full ({self.reliability.memory_capacity} jobs, "
                "queue.reliability.memory_capacity)"
            )
        job_id = uuid.uuid4().hex
        named = self._named(name)
        job = Job(job_id, name, payload, 0, time.time())
        named.jobs[job_id] = _Stored(job)
        self._push(named, job_id, delay)
        return job_id

    async def _fetch(self, name: str, count: int) -> list[Job]:
        named = self._named(name)
        while True:
            now = time.monotonic()
            out: list[Job] = []
            while named.heap and named.heap[0][0] <= now and len(out) < count:
                _, _, job_id = heapq.heappop(named.heap)
                stored = named.jobs.get(job_id)
                if stored is None or stored.in_flight:
                    continue
                stored.in_flight = True
                stored.job.attempts += 1
                out.append(_copy(stored.job))
            if out:
                return out
            wait = self._idle_wait()
            if named.heap:
                wait = min(wait, max(0.0, named.heap[0][0] - now))
            named.wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(named.wakeup.wait(), wait)

    def _leased(self, job: Job) -> _Stored | None:
        stored = self._named(job.queue).jobs.get(job.id)
        return stored if stored is not None and stored.in_flight else None

    async def _ack(self, job: Job) -> None:
        if self._leased(job) is not None:
            del self._named(job.queue).jobs[job.id]

    async def _retry(self, job: Job, delay: float, error: str | None) -> None:
        stored = self._leased(job)
        if stored is None:
            return
        stored.in_flight = False
        if error is None:
            stored.job.attempts -= 1  # a release: this delivery did not count
        else:
            stored.job.error = error
        self._push(self._named(job.queue), job.id, delay)

    async def _dead(self, job: Job, error: str) -> None:
        stored = self._leased(job)
        if stored is None:
            return
        named = self._named(job.queue)
        del named.jobs[job.id]
        stored.job.error = error
        named.dead[job.id] = stored.job
        while len(named.dead) > max(1, self.reliability.failed_retention):
            named.dead.popitem(last=False)

    async def dead_letters(self, name: str, limit: int = 100) -> list[Job]:
        dead = self._named(name).dead
        return [_copy(job) for job in reversed(dead.values())][:limit]

    async def replay(self, name: str, job_id: str) -> bool:
        named = self._named(name)
        job = named.dead.pop(job_id, None)
        if job is None:
            return False
        job.attempts, job.enqueued_at = 0, time.time()
        named.jobs[job_id] = _Stored(job)
        self._push(named, job_id, 0)
        return True


def _copy(job: Job) -> Job:
    return Job(job.id, job.queue, job.payload, job.attempts, job.enqueued_at, job.error)
