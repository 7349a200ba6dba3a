"""Validating event bodies of ``POST /events`` and ``/batch_events``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..config import App
from ..protocol.channels import validate_channel_name
from ..protocol.errors import ProtocolError
from ..protocol.frames import dumps
from .errors import ApiError, bad_request

_SOCKET_ID = re.compile(r"\d+\.\d+")
INFO_ATTRIBUTES = ("subscription_count", "user_count")


@dataclass(slots=True)
class Event:
    """A validated event to publish: ``data`` is the text delivered to clients."""

    name: str
    data: str
    channels: list[str]
    socket_id: str | None
    info: list[str]


def parse_info(value: Any, allowed: tuple[str, ...]) -> list[str]:
    """A comma list of ``info`` attributes; unknown ones are a 400."""
    if value is None or value == "":
        return []
    if not isinstance(value, str):
        raise bad_request("info must be a comma-separated string")
    attributes = [a.strip() for a in value.split(",") if a.strip()]
    unknown = [a for a in attributes if a not in allowed]
    if unknown:
        raise bad_request(f"Unknown info attribute(s): {', '.join(unknown)}")
    return attributes


def parse_event(body: Any, app: App) -> Event:
    """Validate one event against the app's limits; raises ``ApiError`` (400 or 413)."""
    if not isinstance(body, dict):
        raise bad_request("An event must be a JSON object")
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request("Event name is required")
    if len(name) > app.max_event_name_length:
        raise bad_request(
            f"Event name is longer than {app.max_event_name_length} characters", "limit_exceeded"
        )
    if "data" not in body:
        raise bad_request("Event data is required")
    raw = body["data"]
    data = raw if isinstance(raw, str) else dumps(raw)
    limit_kb = app.max_event_payload_in_kb
    if len(data.encode()) > limit_kb * 1024:
        raise ApiError(413, "payload_too_large", f"Event data is larger than {limit_kb} KB")
    channels = _channels(body, app)
    socket_id = body.get("socket_id")
    if socket_id is not None and (
        not isinstance(socket_id, str) or not _SOCKET_ID.fullmatch(socket_id)
    ):
        raise bad_request("socket_id must look like '123.456'")
    return Event(name, data, channels, socket_id, parse_info(body.get("info"), INFO_ATTRIBUTES))


def _channels(body: dict[str, Any], app: App) -> list[str]:
    if "channels" in body:
        channels = body["channels"]
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise bad_request("channels must be a list of channel names")
    elif "channel" in body:
        channels = [body["channel"]]
    else:
        channels = []
    if not channels:
        raise bad_request("channel or channels is required", "missing_channel_info")
    if len(channels) > app.max_event_channels_at_once:
        raise bad_request(
            f"An event may go to at most {app.max_event_channels_at_once} channels at once",
            "limit_exceeded",
        )
    for channel in channels:
        try:
            validate_channel_name(channel, app.max_channel_name_length)
        except ProtocolError as exc:
            raise bad_request(f"{exc.message}: {str(channel)[:64]!r}") from None
    return list(dict.fromkeys(channels))
