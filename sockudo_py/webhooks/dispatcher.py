"""``WebhookDispatcher``: from channel transitions and client events to queued webhook jobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any, Protocol

from ..app_manager import AppManager, AppManagerUnavailable
from ..config import WebhooksConfig
from ..queue import Queue
from . import QUEUE_NAME
from .events import (
    CACHE_MISS,
    CHANNEL_OCCUPIED,
    CHANNEL_VACATED,
    MEMBER_ADDED,
    MEMBER_REMOVED,
    Event,
    body,
    channel_event,
    client_event,
    matches,
    member_event,
    subscription_count_event,
)

log = logging.getLogger("sockudo_py.webhooks")

HOLD_SECONDS = 3.0
"""How long ``channel_vacated`` and ``member_removed`` wait for the channel or user to come
back (Pusher's rule)."""
MAX_BUFFERED = 100_000
"""Events (and jobs not yet queued) kept per node while the app store or the queue is down;
beyond it the oldest are dropped, with an error in the log."""
RETRY_SECONDS = 1.0


class ChannelView(Protocol):
    """Who is where now, cluster-wide, as this node knows it (an ``Adapter`` is one)."""

    def occupied(self, app_id: str, channel: str) -> bool: ...

    def has_member(self, app_id: str, channel: str, user_id: str) -> bool: ...


class WebhookDispatcher:
    """Turns what happens on channels into webhook jobs on the queue.

    It is the adapter's ``ChannelListener`` (occupancy and presence transitions, reported on
    one node per channel) and takes ``client_event``, ``cache_miss`` and
    ``subscription_count`` from the WebSocket handler. Contract:

    * ``channel_vacated`` and ``member_removed`` are held ``hold`` seconds (3). When the
      channel is occupied again (the user is back) within that time, the held event and the
      ``channel_occupied`` (``member_added``) that cancels it are both dropped: a page reload
      sends nothing. When the hold ends, the ``view`` is asked again: a channel occupied
      (a user present) by then, as another node reported, is not sent as vacated (removed).
    * Events are buffered per app for ``batching.duration`` ms (or sent one by one when
      batching is off); a buffer reaching ``batching.size`` is flushed at once. A flush looks
      the app up and queues, for each of its endpoints, the events that endpoint's
      ``event_types`` and ``filter`` take, ``batching.size`` at most per job, as
      ``{app_id, target, body, events}`` (see the package doc). Apps without endpoints cost a
      lookup per flush, nothing more.
    * Nothing is dropped while the app store or the queue is unreachable: the events (jobs)
      wait here and are retried every second, up to ``MAX_BUFFERED`` per node.
    * :meth:`stop` sends the held events at once (the server is going away, the channel is
      vacated for good as far as this node knows) and flushes every buffer to the queue.
    """

    def __init__(
        self,
        app_manager: AppManager,
        queue: Queue,
        config: WebhooksConfig,
        *,
        view: ChannelView | None = None,
        hold: float = HOLD_SECONDS,
    ) -> None:
        self.app_manager = app_manager
        self.view = view
        self.queue = queue
        self.config = config
        self.hold = hold
        self._held: dict[tuple[str, ...], tuple[asyncio.TimerHandle, Event]] = {}
        self._buffers: dict[str, list[Event]] = {}
        self._started: dict[str, int] = {}  # app -> time_ms of its buffer's first event
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._unqueued: deque[dict[str, Any]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._retrier: asyncio.TimerHandle | None = None
        self._stopped = False

    # --- ChannelListener -------------------------------------------------------------------

    def channel_occupied(self, app_id: str, channel: str) -> None:
        if not self._release_held((CHANNEL_VACATED, app_id, channel)):
            self._add(app_id, channel_event(CHANNEL_OCCUPIED, channel))

    def channel_vacated(self, app_id: str, channel: str) -> None:
        self._hold((CHANNEL_VACATED, app_id, channel), channel_event(CHANNEL_VACATED, channel))

    def member_added(self, app_id: str, channel: str, user_id: str) -> None:
        if not self._release_held((MEMBER_REMOVED, app_id, channel, user_id)):
            self._add(app_id, member_event(MEMBER_ADDED, channel, user_id))

    def member_removed(self, app_id: str, channel: str, user_id: str) -> None:
        event = member_event(MEMBER_REMOVED, channel, user_id)
        self._hold((MEMBER_REMOVED, app_id, channel, user_id), event)

    # --- events of the WebSocket handler ---------------------------------------------------

    def client_event(
        self,
        app_id: str,
        channel: str,
        event: str,
        data: Any,
        socket_id: str,
        user_id: str | None = None,
    ) -> None:
        self._add(app_id, client_event(channel, event, data, socket_id, user_id))

    def cache_miss(self, app_id: str, channel: str) -> None:
        self._add(app_id, channel_event(CACHE_MISS, channel))

    def subscription_count(self, app_id: str, channel: str, count: int) -> None:
        self._add(app_id, subscription_count_event(channel, count))

    # --- holding ---------------------------------------------------------------------------

    def _hold(self, key: tuple[str, ...], event: Event) -> None:
        """Hold ``event`` (its ``key``: name, app, channel[, user])."""
        if self._stopped:
            self._send_held(key, event)
            return
        self._release_held(key)  # (a repeat cannot happen in order, but never keep two)
        timer = asyncio.get_running_loop().call_later(self.hold, self._held_expired, key)
        self._held[key] = (timer, event)

    def _release_held(self, key: tuple[str, ...]) -> bool:
        """Drop a held event; True if there was one."""
        held = self._held.pop(key, None)
        if held is None:
            return False
        held[0].cancel()
        return True

    def _held_expired(self, key: tuple[str, ...]) -> None:
        held = self._held.pop(key, None)
        if held is not None:
            self._send_held(key, held[1])

    def _send_held(self, key: tuple[str, ...], event: Event) -> None:
        """Queue a held event unless the ``view`` says it is no longer true."""
        app_id, channel = key[1], key[2]
        view = self.view
        if view is not None:
            back = (
                view.occupied(app_id, channel)
                if event["name"] == CHANNEL_VACATED
                else view.has_member(app_id, channel, key[3])
            )
            if back:
                return
        self._add(app_id, event)

    # --- batching --------------------------------------------------------------------------

    def _add(self, app_id: str, event: Event) -> None:
        buffer = self._buffers.get(app_id)
        if buffer is None:
            buffer = self._buffers[app_id] = []
            self._started[app_id] = int(time.time() * 1000)
        buffer.append(event)
        batching = self.config.batching
        if self._stopped or not batching.enabled or len(buffer) >= batching.size:
            self._flush_soon(app_id)
        elif app_id not in self._timers:
            delay = batching.duration / 1000
            self._timers[app_id] = asyncio.get_running_loop().call_later(
                delay, self._flush_soon, app_id
            )

    def _flush_soon(self, app_id: str) -> None:
        timer = self._timers.pop(app_id, None)
        if timer is not None:
            timer.cancel()
        events = self._buffers.pop(app_id, None)
        time_ms = self._started.pop(app_id, 0)
        if events:
            self._spawn(self._flush(app_id, time_ms, events))

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self, app_id: str, time_ms: int, events: list[Event]) -> None:
        try:
            app = await self.app_manager.find_by_id(app_id)
        except AppManagerUnavailable as exc:
            log.warning("webhooks of app %s wait: the app store is unreachable (%s)", app_id, exc)
            self._keep({"app_id": app_id, "time_ms": time_ms, "pending": events})
            return
        if app is None or not app.webhooks:
            return
        size = self.config.batching.size
        for webhook in app.webhooks:
            chosen = [event for event in events if matches(webhook, event)]
            target = webhook.model_dump(
                mode="json", exclude={"event_types", "filter"}, exclude_none=True
            )
            for start in range(0, len(chosen), size):
                chunk = chosen[start : start + size]
                job = {
                    "app_id": app_id,
                    "target": target,
                    "body": body(time_ms, chunk).decode(),
                    "events": len(chunk),
                }
                await self._enqueue(job)

    async def _enqueue(self, job: dict[str, Any]) -> None:
        try:
            await self.queue.enqueue(QUEUE_NAME, job)
        except Exception as exc:
            log.warning(
                "a webhook job of app %s waits: the queue refused it (%r)", job["app_id"], exc
            )
            self._keep(job)

    # --- waiting for the app store or the queue -----------------------------------------

    def _keep(self, item: dict[str, Any]) -> None:
        """Keep a job (or, with ``pending``, events not yet looked up) for a later retry."""
        self._unqueued.append(item)
        if len(self._unqueued) > MAX_BUFFERED:
            dropped = self._unqueued.popleft()
            log.error("webhooks: buffer full, a webhook job of app %s dropped", dropped["app_id"])
        if self._retrier is None and not self._stopped:
            self._retrier = asyncio.get_running_loop().call_later(RETRY_SECONDS, self._retry_kept)

    def _retry_kept(self) -> None:
        self._retrier = None
        self._spawn(self._send_kept())

    async def _send_kept(self) -> None:
        items = list(self._unqueued)
        self._unqueued.clear()
        for item in items:
            if "pending" in item:
                await self._flush(item["app_id"], item["time_ms"], item["pending"])
            else:
                await self._enqueue(item)

    # --- life cycle --------------------------------------------------------------------------

    async def stop(self, timeout: float = 10.0) -> None:
        """Send what is held, flush every buffer to the queue (waiting at most ``timeout``
        seconds for the app store and the queue) and stop."""
        self._stopped = True
        held, self._held = self._held, {}
        for key, (timer, event) in held.items():
            timer.cancel()
            self._send_held(key, event)
        for app_id in list(self._buffers):
            self._flush_soon(app_id)
        if self._retrier is not None:
            self._retrier.cancel()
            self._retrier = None
        deadline = time.monotonic() + timeout
        while (self._tasks or self._unqueued) and time.monotonic() < deadline:
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=deadline - time.monotonic())
            if self._unqueued:
                await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
                self._spawn(self._send_kept())
        if self._unqueued:
            log.error(
                "webhooks: %d webhook job(s) could not be queued before exit", len(self._unqueued)
            )
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)
