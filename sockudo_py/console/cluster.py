"""``ConsoleCluster``: the console's live log and message rates across the nodes of a cluster,
over the adapter's relay (with the local adapter nothing leaves the node)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..adapters import Adapter
from .tap import Entry, Tap

TICK = 0.1
"""Seconds between two batches of entries forwarded to watching nodes."""
ANNOUNCE = 1.0
"""Seconds between two announcements of what this node watches, and two rate samples."""
WATCH_TTL = 3.5
"""A node's watch (and its rates) expire this long after its last announcement."""
MAX_FORWARD = 2000
"""Entries waiting to be forwarded at most; the rest are dropped, and counted."""
BATCH = 200
"""Entries in one forwarded message at most."""

Totals = Callable[[], dict[str, tuple[float, float]]]


class ConsoleCluster:
    """Keeps each node's console cluster-wide. Relayed messages (``k`` names the kind):

    * ``watch``, every ``ANNOUNCE`` seconds while this node's consoles watch apps (and once
      more, empty, when they stop): their app ids. A node told so records the entries of
      those apps (its ``Tap`` is active) and forwards them here until the watch is not
      repeated within ``WATCH_TTL`` (a node that died).
    * ``entries``, every ``TICK`` while there are any: the entries of one app, in order,
      with ``lost``, the entries it could not forward (more than ``MAX_FORWARD`` waiting).
    * ``rates``, every ``ANNOUNCE``: the messages per second received and sent on this node
      of the apps other nodes watch.

    Every ``ANNOUNCE`` seconds the node also samples its own message rates (``totals``,
    running counts of messages received and sent per app), so ``rates`` answers for the
    cluster: this node's plus the last ones of the nodes that sent them in time.
    """

    def __init__(self, adapter: Adapter, tap: Tap, totals: Totals) -> None:
        self.adapter = adapter
        self.tap = tap
        self.totals = totals
        self._outbox: deque[tuple[str, Entry]] = deque()
        self._lost: dict[str, int] = {}
        self._watchers: dict[str, tuple[float, set[str]]] = {}  # node -> (until, its apps)
        self._announced = False
        self._rates: dict[str, tuple[float, float]] = {}
        self._remote_rates: dict[str, tuple[float, dict[str, list[float]]]] = {}
        self._last: tuple[float, dict[str, tuple[float, float]]] | None = None
        self._wake = asyncio.Event()
        self._announce_now = False
        self._task: asyncio.Task[None] | None = None
        adapter.listen_relay(self.on_relay)
        tap.forward = self.offer

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def changed(self) -> None:
        """What this node's consoles watch changed: tell the other nodes now."""
        self._announce_now = True
        self._wake.set()

    def rates(self, app_id: str) -> tuple[float, float, int]:
        """Messages per second received and sent for ``app_id`` across the nodes that
        reported, and how many did (this one included)."""
        received, sent = self._rates.get(app_id, (0.0, 0.0))
        nodes = 1
        now = time.monotonic()
        for until, rates in self._remote_rates.values():
            if until >= now and app_id in rates:
                received += rates[app_id][0]
                sent += rates[app_id][1]
                nodes += 1
        return received, sent, nodes

    # --- sending ----------------------------------------------------------------------

    def offer(self, app_id: str, entry: Entry) -> None:
        """Forward ``entry`` (of an app another node watches) with the next batch."""
        if len(self._outbox) >= MAX_FORWARD:
            self._lost[app_id] = self._lost.get(app_id, 0) + 1
            return
        self._outbox.append((app_id, entry))

    async def _run(self) -> None:
        next_announce = 0.0
        while True:
            now = time.monotonic()
            if now >= next_announce or self._announce_now:
                self._announce_now = False
                self._announce(now)
                next_announce = now + ANNOUNCE
            self._flush()
            # entries to forward come only while other nodes watch
            wait = min(TICK, next_announce - now) if self._watchers else next_announce - now
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    def _announce(self, now: float) -> None:
        for node, (until, _) in list(self._watchers.items()):
            if until < now:
                del self._watchers[node]
        for node, (until, _) in list(self._remote_rates.items()):
            if until < now:
                del self._remote_rates[node]
        self.tap.watch_remote(set().union(*(apps for _, apps in self._watchers.values())))
        local = self.tap.local_apps
        if local or self._announced:
            self.adapter.relay({"k": "watch", "apps": sorted(local)})
            self._announced = bool(local)
        self._sample(now)
        watched = {
            app_id: list(rates)
            for app_id, rates in self._rates.items()
            if self.tap.remotely_watched(app_id)
        }
        if watched:
            self.adapter.relay({"k": "rates", "r": watched})

    def _sample(self, now: float) -> None:
        totals = self.totals()
        if self._last is not None:
            then, before = self._last
            seconds = max(now - then, 1e-3)
            self._rates = {
                app_id: (
                    max(0.0, (received - before.get(app_id, (0.0, 0.0))[0]) / seconds),
                    max(0.0, (sent - before.get(app_id, (0.0, 0.0))[1]) / seconds),
                )
                for app_id, (received, sent) in totals.items()
            }
        self._last = now, totals

    def _flush(self) -> None:
        batches: dict[str, list[Entry]] = {}
        while self._outbox:
            app_id, entry = self._outbox.popleft()
            batch = batches.setdefault(app_id, [])
            batch.append(entry)
            if len(batch) >= BATCH:
                self.adapter.relay({"k": "entries", "a": app_id, "e": batch, "lost": 0})
                batches[app_id] = []
        for app_id in batches.keys() | self._lost.keys():
            lost = self._lost.pop(app_id, 0)
            batch = batches.get(app_id, [])
            if batch or lost:
                self.adapter.relay({"k": "entries", "a": app_id, "e": batch, "lost": lost})

    # --- receiving --------------------------------------------------------------------

    def on_relay(self, sender: str, message: Any) -> None:
        """A relayed message of node ``sender`` (the adapter's relay listener)."""
        kind = message.get("k") if isinstance(message, dict) else None
        now = time.monotonic()
        if kind == "watch":
            watched = bool(self._watchers)
            apps = {str(app_id) for app_id in message.get("apps", [])}
            if apps:
                self._watchers[sender] = (now + WATCH_TTL, apps)
            else:
                self._watchers.pop(sender, None)
            self.tap.watch_remote(set().union(*(a for _, a in self._watchers.values())))
            if self._watchers and not watched:
                self._wake.set()  # entries to forward from now on: batch them every TICK
        elif kind == "entries":
            app_id = str(message["a"])
            for entry in message["e"]:
                self.tap.deliver(app_id, entry)
            if message.get("lost"):
                self.tap.lost(app_id, int(message["lost"]))
        elif kind == "rates":
            self._remote_rates[sender] = (now + WATCH_TTL, dict(message["r"]))
