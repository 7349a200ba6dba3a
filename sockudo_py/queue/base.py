"""The queue interface: durable, at-least-once job queues (webhook batches leave through one).

A job is an opaque JSON-able ``dict`` (for webhooks ``{app_id, app_key, app_secret, payload:
{time_ms, events}}``) put on a named queue (``webhooks``) by :meth:`Queue.enqueue` and handed to
a handler by :meth:`Queue.consume`, on any node that consumes that queue.

Contract (every driver; the contract suite tests/contracts/test_queue_contract.py pins it):

* **At least once.** A job is removed only when its handler *returns* (the acknowledgement).
  A handler that raises, a consumer that is stopped or cancelled mid-job, and (durable drivers)
  a worker process that dies holding the job all make it visible again: a handler must be
  idempotent, or tolerate duplicates (a webhook receiver may see a batch twice).
* **Attempts.** ``Job.attempts`` is the number of deliveries so far, this one included (1 on
  the first). A job released by a stopping consumer is not counted again on the durable
  drivers' best effort; a lease that expired is.
* **Failure -> retry with back-off.** A handler that raises :class:`Retry` is retried after
  its ``delay``; any other exception after ``reliability`` back-off: ``retry_base_delay_ms * 2 **
  (attempts - 1)``, capped at ``retry_max_delay_ms``, +/- ``retry_jitter``. A handler that
  raises :class:`Reject` sends the job to the dead letters at once.
* **Dead letters.** A job that fails on its ``max_attempts``-th delivery (``consume``'s
  argument, default ``reliability.max_attempts``), or is rejected, is kept in the queue's
  dead-letter store with ``error`` (the last failure) and ``attempts``: never dropped silently
  (oldest beyond ``reliability.failed_retention`` are, on the memory and redis drivers).
  :meth:`Queue.dead_letters` lists them newest first; :meth:`Queue.replay` puts one back on
  the queue with its attempts counted from 0 and ``enqueued_at`` now (a fresh retry window).
* **Delays.** ``enqueue(..., delay=s)`` makes the job visible no earlier than ``s`` seconds
  from now (SQS: see its module for the 900 s limit).
* **Concurrency.** One ``consume`` call runs at most ``concurrency`` handlers at a time.
* **Stop.** :meth:`Queue.stop` ends every ``consume`` of this instance: no new job is fetched,
  running handlers get up to ``reliability.shutdown_timeout_ms`` to finish, the rest are
  cancelled and their jobs released; jobs not yet delivered stay queued (lost with the process
  on the memory driver only).

A driver implements the protected primitives (``_fetch``, ``_ack``, ``_retry``, ``_dead``,
``_renew``) and the public ``enqueue``/``dead_letters``/``replay``; the worker loop, leases
renewal, back-off and dead-lettering policy live here, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import QueueReliabilityConfig

log = logging.getLogger("sockudo_py.queue")


@dataclass
class Job:
    """One delivery of a job.

    ``id``: unique, given by ``enqueue``; ``queue``: the queue's name; ``payload``: what was
    enqueued; ``attempts``: deliveries so far, this one included; ``enqueued_at``: Unix
    seconds of the first ``enqueue`` (a webhook sender measures its 5-minute retry window from
    it); ``error``: the last failure (``None`` before any), set on dead letters.
    ``handle`` is the driver's own (lease token, SQS receipt handle).
    """

    id: str
    queue: str
    payload: dict[str, Any]
    attempts: int = 0
    enqueued_at: float = 0.0
    error: str | None = None
    handle: Any = field(default=None, repr=False, compare=False)


Handler = Callable[[Job], Awaitable[None]]


class Retry(Exception):
    """Raised by a handler: deliver the job again after ``delay`` seconds (counted as a
    failed attempt; the ``max_attempts`` bound still applies)."""

    def __init__(self, delay: float, reason: str = "retry requested") -> None:
        super().__init__(reason)
        self.delay = max(0.0, delay)


class Reject(Exception):
    """Raised by a handler: the job cannot succeed; move it to the dead letters now."""


class QueueFull(RuntimeError):
    """``enqueue`` on a memory queue at ``reliability.memory_capacity`` jobs."""


class Queue(ABC):
    """A set of named at-least-once job queues; see the module doc for the contract."""

    #: Whether a fetched job must have its lease renewed while its handler runs.
    LEASED = True

    #: Handlers a consumer of this queue should run at once (the driver's ``concurrency``
    #: setting where it has one).
    concurrency = 20

    def __init__(self, reliability: QueueReliabilityConfig | None = None) -> None:
        self.reliability = reliability or QueueReliabilityConfig()
        self._stopping = asyncio.Event()
        self._consumers: set[asyncio.Task[None]] = set()
        self._shutdown_timeout = self.reliability.shutdown_timeout_ms / 1000

    # ------------------------------------------------------------------ public interface

    async def start(self) -> None:
        """Open connections (a durable driver checks its service here and raises if it is
        unreachable)."""
        self._stopping.clear()

    async def stop(self, timeout: float | None = None) -> None:
        """End every ``consume`` of this instance (see the module doc; ``timeout`` replaces
        ``reliability.shutdown_timeout_ms`` for running handlers), then close connections.
        Enqueued jobs stay queued on the durable drivers."""
        if timeout is not None:
            self._shutdown_timeout = timeout
        self._stopping.set()
        if self._consumers:
            await asyncio.gather(*self._consumers, return_exceptions=True)
        await self._close()

    async def _close(self) -> None:
        """Release connections (drivers override)."""

    @abstractmethod
    async def enqueue(self, name: str, payload: dict[str, Any], delay: float = 0) -> str:
        """Queue ``payload`` (JSON-able) on ``name``, visible after ``delay`` seconds;
        returns the job's id. Raises when the job could not be stored (service down,
        :class:`QueueFull`): the caller decides whether to drop or keep it."""

    @abstractmethod
    async def dead_letters(self, name: str, limit: int = 100) -> list[Job]:
        """Up to ``limit`` dead letters of ``name``, newest first, with ``attempts`` and
        ``error``."""

    @abstractmethod
    async def replay(self, name: str, job_id: str) -> bool:
        """Move dead letter ``job_id`` back onto ``name`` (visible now, attempts from 0,
        ``enqueued_at`` now); ``False`` if there is no such dead letter."""

    async def consume(
        self,
        name: str,
        handler: Handler,
        *,
        concurrency: int = 1,
        max_attempts: int | None = None,
    ) -> None:
        """Deliver jobs of ``name`` to ``handler``, at most ``concurrency`` at a time, until
        :meth:`stop` (or until the calling task is cancelled). Returning acknowledges a job;
        raising retries it (see the module doc). Never raises for a job's or the service's
        failure: those are logged and retried."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        attempts_bound = max_attempts or self.reliability.max_attempts
        task = asyncio.current_task()
        assert task is not None
        self._consumers.add(task)
        running: set[asyncio.Task[None]] = set()
        try:
            await self._consume_loop(name, handler, concurrency, attempts_bound, running)
        finally:
            self._consumers.discard(task)
            await self._drain(running)

    # ------------------------------------------------------------------ driver primitives

    @abstractmethod
    async def _fetch(self, name: str, count: int) -> list[Job]:
        """Lease up to ``count`` visible jobs of ``name`` (attempts already counted). May wait
        a while (poll interval, long poll) and return ``[]``; cancellable."""

    @abstractmethod
    async def _ack(self, job: Job) -> None:
        """Remove a leased job for good."""

    @abstractmethod
    async def _retry(self, job: Job, delay: float, error: str | None) -> None:
        """Make a leased job visible again after ``delay`` seconds, remembering ``error``;
        ``error`` ``None`` means a release (stop), not counted as a failed attempt where the
        driver can tell."""

    @abstractmethod
    async def _dead(self, job: Job, error: str) -> None:
        """Move a leased job to the dead letters."""

    async def _renew(self, job: Job) -> None:
        """Extend a leased job's lease (drivers with leases override)."""

    def _renew_interval(self) -> float:
        return self.reliability.lease_renew_interval_ms / 1000

    def _idle_wait(self) -> float:
        return self.reliability.worker_poll_interval_ms / 1000

    # ------------------------------------------------------------------ the worker

    def backoff(self, attempts: int) -> float:
        """Seconds before retrying a job whose ``attempts``-th delivery failed."""
        r = self.reliability
        base: float = min(r.retry_max_delay_ms, r.retry_base_delay_ms * 2 ** max(0, attempts - 1))
        jitter = 1 + random.uniform(-r.retry_jitter, r.retry_jitter)
        return max(0.0, base * jitter / 1000)

    async def _consume_loop(
        self,
        name: str,
        handler: Handler,
        concurrency: int,
        max_attempts: int,
        running: set[asyncio.Task[None]],
    ) -> None:
        stopping = asyncio.ensure_future(self._stopping.wait())
        fetch: asyncio.Future[list[Job]] | None = None
        try:
            while not self._stopping.is_set():
                free = concurrency - len(running)
                if free <= 0:
                    await asyncio.wait({*running, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    continue
                fetch = asyncio.ensure_future(self._fetch(name, free))
                await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not fetch.done():
                    fetch.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        jobs = await fetch
                        await self._release_all(jobs)  # fetched as we were cancelling it
                    break
                try:
                    jobs = fetch.result()
                except Exception as exc:
                    log.warning("queue %r: fetching jobs failed: %r", name, exc)
                    await self._sleep(self._idle_wait())
                    continue
                if self._stopping.is_set():
                    await self._release_all(jobs)
                    break
                for job in jobs:
                    run = asyncio.ensure_future(self._run(job, handler, max_attempts))
                    running.add(run)
                    run.add_done_callback(running.discard)
        finally:
            stopping.cancel()
            if fetch is not None and not fetch.done():
                fetch.cancel()  # the consumer was cancelled: leases it took run out

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _drain(self, running: set[asyncio.Task[None]]) -> None:
        """Let running handlers finish within the shutdown timeout; cancel the rest (their
        ``_run`` releases their jobs)."""
        if not running:
            return
        timeout = self._shutdown_timeout if self._stopping.is_set() else 0
        pending = set(running)
        if timeout > 0:
            _, pending = await asyncio.wait(pending, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _release_all(self, jobs: list[Job]) -> None:
        for job in jobs:
            await self._safely("release", self._retry(job, 0, None))

    async def _safely(self, what: str, operation: Awaitable[None]) -> None:
        try:
            await operation
        except Exception as exc:  # the lease runs out and the job comes back by itself
            log.warning("queue: %s failed: %r", what, exc)

    async def _run(self, job: Job, handler: Handler, max_attempts: int) -> None:
        renewer = asyncio.ensure_future(self._keep_leased(job)) if self.LEASED else None
        try:
            try:
                await handler(job)
            except asyncio.CancelledError:
                await asyncio.shield(
                    self._safely(f"release of {job.id}", self._retry(job, 0, None))
                )
                raise
            except Reject as exc:
                await self._safely(f"dead-lettering {job.id}", self._dead(job, _describe(exc)))
            except Exception as exc:
                error = _describe(exc)
                if job.attempts >= max_attempts:
                    log.warning(
                        "queue %r: job %s failed %d time(s), moved to the dead letters: %s",
                        job.queue, job.id, job.attempts, error,
                    )  # fmt: skip
                    await self._safely(f"dead-lettering {job.id}", self._dead(job, error))
                else:
                    delay = exc.delay if isinstance(exc, Retry) else self.backoff(job.attempts)
                    await self._safely(f"retry of {job.id}", self._retry(job, delay, error))
            else:
                await self._safely(f"ack of {job.id}", self._ack(job))
        finally:
            if renewer is not None:
                renewer.cancel()

    async def _keep_leased(self, job: Job) -> None:
        while True:
            await asyncio.sleep(self._renew_interval())
            await self._safely(f"lease renewal of {job.id}", self._renew(job))


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
