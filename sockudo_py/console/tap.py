"""``Tap``: what the console's live log shows, recorded only while a console watches.

The server's hooks (HTTP publishes, client events, subscribes, connections, webhook
deliveries) are written as ``if tap.active: tap.<event>(...)``: with no console open on
this node, nor on another node that asked for this one's entries, ``active`` is False and a
hook costs that one attribute read. While one is open, each hook builds one small entry
(a dict), admitted at most ``rate`` per second and app on this node (a token bucket of
``burst``; the rest are dropped and counted: the log is sampled under load), and offers it
to the app's subscribers, each holding at most ``buffer`` entries until its page takes them
(the rest dropped and counted), and to ``forward`` when other nodes watch the app.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from ..protocol.frames import JsonValue, PresenceMember, dumps

Entry = dict[str, Any]
"""One log line, JSON-able: ``time`` (epoch seconds), ``node``, ``kind``, ``channels``
(a list, maybe empty) and the fields of its kind."""

PREVIEW_CHARS = 200
"""Characters of an event's data kept in its entry."""
RATE = 100.0
"""Entries admitted per second and app on each node, by default."""
BURST = 200
BUFFER = 1000
"""Entries a subscriber holds until its page takes them, by default."""

PUBLISHED = "api_event"
CLIENT_EVENT = "client_event"
SUBSCRIBED = "subscribed"
UNSUBSCRIBED = "unsubscribed"
CONNECTED = "connected"
DISCONNECTED = "disconnected"
WEBHOOK = "webhook"


class Subscriber:
    """One console's feed of one app: a bounded buffer of entries plus the count of those it
    lost. ``take`` empties it; ``wake`` is set when an entry arrives."""

    __slots__ = ("_seen_app_drops", "app_id", "dropped", "entries", "limit", "wake")

    def __init__(self, app_id: str, limit: int) -> None:
        self.app_id = app_id
        self.limit = limit
        self.entries: deque[Entry] = deque()
        self.dropped = 0
        self.wake = asyncio.Event()
        self._seen_app_drops = 0

    def offer(self, entry: Entry) -> None:
        if len(self.entries) >= self.limit:
            self.dropped += 1
            return
        self.entries.append(entry)
        self.wake.set()

    def take(self, app_drops: int) -> tuple[list[Entry], int]:
        """The buffered entries and how many were lost since the last ``take`` (here, or
        before admission: ``app_drops`` is the app's running count of those)."""
        entries = list(self.entries)
        self.entries.clear()
        self.wake.clear()
        dropped = self.dropped + app_drops - self._seen_app_drops
        self.dropped, self._seen_app_drops = 0, app_drops
        return entries, dropped


class Tap:
    """The node's recorder for the console's live log (see the module doc).

    ``active`` is True while an app is watched, by a local ``subscribe`` or by another node
    (``watch_remote``); hooks are called only then. An entry of an unwatched app is not
    built. ``forward(app_id, entry)`` receives the entries of apps other nodes watch.
    ``clock`` is ``time.monotonic`` but for tests.
    """

    def __init__(
        self,
        node_id: str,
        *,
        rate: float = RATE,
        burst: int = BURST,
        buffer: int = BUFFER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node_id = node_id
        self.active = False
        self.rate, self.burst, self.buffer = rate, burst, buffer
        self.forward: Callable[[str, Entry], None] | None = None
        self._clock = clock
        self._subscribers: dict[str, set[Subscriber]] = {}
        self._remote: set[str] = set()
        self._watched: set[str] = set()
        self._budget: dict[str, tuple[float, float]] = {}  # app -> (tokens, at)
        self.app_drops: dict[str, int] = {}
        """Entries of each app refused admission since start-up."""

    # --- who watches ------------------------------------------------------------------

    def subscribe(self, app_id: str) -> Subscriber:
        subscriber = Subscriber(app_id, self.buffer)
        self._subscribers.setdefault(app_id, set()).add(subscriber)
        self._update()
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        subscribers = self._subscribers.get(subscriber.app_id)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._subscribers[subscriber.app_id]
        self._update()

    def watch_remote(self, app_ids: Iterable[str]) -> None:
        """The apps other nodes' consoles watch now (replacing the previous set)."""
        self._remote = set(app_ids)
        self._update()

    @property
    def local_apps(self) -> set[str]:
        """The apps this node's consoles watch."""
        return set(self._subscribers)

    def remotely_watched(self, app_id: str) -> bool:
        return app_id in self._remote

    def _update(self) -> None:
        self._watched = set(self._subscribers) | self._remote
        self.active = bool(self._watched)
        for app_id in [a for a in self._budget if a not in self._watched]:
            del self._budget[app_id]

    def take(self, subscriber: Subscriber) -> tuple[list[Entry], int]:
        """What ``subscriber`` holds and lost since it was last asked (its app's admission
        drops included)."""
        return subscriber.take(self.app_drops.get(subscriber.app_id, 0))

    # --- recording --------------------------------------------------------------------

    def _admit(self, app_id: str) -> bool:
        """Whether an entry of ``app_id`` is recorded: the app is watched and within its
        ``rate`` (a refused one is counted in ``app_drops``)."""
        if app_id not in self._watched:
            return False
        now = self._clock()
        tokens, at = self._budget.get(app_id, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self._budget[app_id] = (tokens, now)
            self.app_drops[app_id] = self.app_drops.get(app_id, 0) + 1
            return False
        self._budget[app_id] = (tokens - 1.0, now)
        return True

    def _emit(self, app_id: str, kind: str, channels: list[str], fields: Entry) -> None:
        entry: Entry = {
            "time": time.time(),
            "node": self.node_id,
            "kind": kind,
            "channels": channels,
            **fields,
        }
        self.deliver(app_id, entry)
        if self.forward is not None and app_id in self._remote:
            self.forward(app_id, entry)

    def deliver(self, app_id: str, entry: Entry) -> None:
        """Hand ``entry`` (recorded here, or by another node) to this node's consoles."""
        for subscriber in self._subscribers.get(app_id, ()):
            subscriber.offer(entry)

    def lost(self, app_id: str, count: int) -> None:
        """Another node dropped ``count`` entries of ``app_id``: tell this node's consoles."""
        for subscriber in self._subscribers.get(app_id, ()):
            subscriber.dropped += count
            subscriber.wake.set()

    def published(
        self,
        app_id: str,
        channels: list[str],
        event: str,
        data: str,
        except_socket_id: str | None,
        via: str,
    ) -> None:
        """An event published through the HTTP API (``via`` ``http``) or the console."""
        if self._admit(app_id):
            fields = {"event": event, **_preview(data), "except": except_socket_id, "via": via}
            self._emit(app_id, PUBLISHED, list(channels), fields)

    def client_event(
        self, app_id: str, channel: str, event: str, data: JsonValue, socket_id: str,
        member: PresenceMember | None,
    ) -> None:  # fmt: skip
        """A client event sent by ``socket_id`` (as presence ``member``, if any)."""
        if self._admit(app_id):
            text = data if isinstance(data, str) else dumps(data)
            fields = {"event": event, **_preview(text), **_socket(socket_id, member)}
            self._emit(app_id, CLIENT_EVENT, [channel], fields)

    def subscribed(
        self, app_id: str, channel: str, socket_id: str, member: PresenceMember | None
    ) -> None:
        if self._admit(app_id):
            self._emit(app_id, SUBSCRIBED, [channel], _socket(socket_id, member))

    def unsubscribed(
        self, app_id: str, channel: str, socket_id: str, member: PresenceMember | None
    ) -> None:
        if self._admit(app_id):
            self._emit(app_id, UNSUBSCRIBED, [channel], _socket(socket_id, member))

    def connected(self, app_id: str, socket_id: str) -> None:
        if self._admit(app_id):
            self._emit(app_id, CONNECTED, [], {"socket_id": socket_id})

    def disconnected(self, app_id: str, socket_id: str, code: int | None) -> None:
        if self._admit(app_id):
            self._emit(app_id, DISCONNECTED, [], {"socket_id": socket_id, "code": code})

    def webhook(
        self, app_id: str, target: str, events: list[tuple[str, str]], status: int | None,
        error: str | None, attempt: int,
    ) -> None:  # fmt: skip
        """A webhook request sent to ``target`` with ``events`` (``(name, channel)``):
        answered ``status``, or failed with ``error``; ``attempt`` counts from 1."""
        if self._admit(app_id):
            names = ", ".join(dict.fromkeys(name for name, _ in events))
            channels = list(dict.fromkeys(channel for _, channel in events if channel))
            fields = {
                "event": names,
                "target": target,
                "status": status,
                "error": error,
                "attempt": attempt,
            }
            self._emit(app_id, WEBHOOK, channels, fields)


def _socket(socket_id: str, member: PresenceMember | None) -> Entry:
    """``socket_id`` and ``user_id`` (a presence member's, else None)."""
    return {"socket_id": socket_id, "user_id": member.key if member is not None else None}


def _preview(data: str) -> Entry:
    """``size`` (characters) and the first ``PREVIEW_CHARS`` of ``data`` (``truncated``)."""
    return {
        "size": len(data),
        "data": data[:PREVIEW_CHARS],
        "truncated": len(data) > PREVIEW_CHARS,
    }
