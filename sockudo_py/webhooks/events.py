"""Webhook events as Pusher defines them, and which endpoint wants which: pure functions."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import orjson

from ..config import App, Webhook

CHANNEL_OCCUPIED = "channel_occupied"
CHANNEL_VACATED = "channel_vacated"
MEMBER_ADDED = "member_added"
MEMBER_REMOVED = "member_removed"
CLIENT_EVENT = "client_event"
CACHE_MISS = "cache_miss"
SUBSCRIPTION_COUNT = "subscription_count"

EVENT_NAMES = frozenset(
    {
        CHANNEL_OCCUPIED,
        CHANNEL_VACATED,
        MEMBER_ADDED,
        MEMBER_REMOVED,
        CLIENT_EVENT,
        CACHE_MISS,
        SUBSCRIPTION_COUNT,
    }
)

Event = dict[str, Any]
"""One entry of a webhook body's ``events``: ``name``, ``channel`` and the kind's fields."""


def channel_event(name: str, channel: str) -> Event:
    """``channel_occupied``, ``channel_vacated`` or ``cache_miss``."""
    return {"name": name, "channel": channel}


def member_event(name: str, channel: str, user_id: str) -> Event:
    """``member_added`` or ``member_removed``."""
    return {"name": name, "channel": channel, "user_id": user_id}


def client_event(
    channel: str, event: str, data: Any, socket_id: str, user_id: str | None = None
) -> Event:
    """A client event as Pusher reports it: ``data`` as text (JSON-encoded unless the client
    sent a string), ``user_id`` on presence channels."""
    text = data if isinstance(data, str) else orjson.dumps(data).decode()
    result: Event = {
        "name": CLIENT_EVENT,
        "channel": channel,
        "event": event,
        "data": text,
        "socket_id": socket_id,
    }
    if user_id is not None:
        result["user_id"] = user_id
    return result


def subscription_count_event(channel: str, count: int) -> Event:
    return {"name": SUBSCRIPTION_COUNT, "channel": channel, "subscription_count": count}


def body(time_ms: int, events: list[Event]) -> bytes:
    """The request body Pusher sends: ``{"time_ms": ..., "events": [...]}``."""
    return orjson.dumps({"time_ms": time_ms, "events": events})


def wants(app: App, name: str) -> bool:
    """Whether any endpoint of ``app`` takes events called ``name``."""
    return any(name in webhook.event_types for webhook in app.webhooks)


def matches(webhook: Webhook, event: Event) -> bool:
    """Whether ``webhook`` takes ``event``: its name is in ``event_types`` (an empty list takes
    nothing, as in soketi) and its channel passes the ``filter``."""
    if event["name"] not in webhook.event_types:
        return False
    rules = webhook.filter
    if rules is None:
        return True
    channel: str = event["channel"]
    if rules.channel_name_starts_with and not channel.startswith(rules.channel_name_starts_with):
        return False
    if rules.channel_name_ends_with and not channel.endswith(rules.channel_name_ends_with):
        return False
    return not rules.channel_pattern or _pattern(rules.channel_pattern).search(channel) is not None


@lru_cache(maxsize=256)
def _pattern(expression: str) -> re.Pattern[str]:
    return re.compile(expression)
