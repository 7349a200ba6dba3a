"""Pusher protocol 7 frames: parsing what clients send and encoding what the server sends.

Every parser takes untrusted input and either returns a typed value or raises
``ProtocolError``; every encoder returns the frame as ``str``, ready to be sent as is.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from .errors import ErrorCode, ProtocolError

JsonValue = Any


def dumps(value: JsonValue) -> str:
    """Compact JSON text (orjson), the encoding used for every frame."""
    return orjson.dumps(value).decode()


@dataclass(slots=True)
class ClientFrame:
    """One frame received from a client: ``event`` always set, ``channel`` and ``data`` optional."""

    event: str
    channel: str | None
    data: JsonValue


def parse_frame(raw: str | bytes) -> ClientFrame:
    """Parse a text frame into a ``ClientFrame``; bad JSON or shape raises ``ProtocolError``."""
    try:
        message = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "Invalid JSON") from exc
    if not isinstance(message, dict):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "A frame must be a JSON object")
    event = message.get("event")
    if not isinstance(event, str) or not event:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "A frame needs an 'event' string")
    channel = message.get("channel")
    if channel is not None and not isinstance(channel, str):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "'channel' must be a string")
    return ClientFrame(event, channel, message.get("data"))


def _object(data: JsonValue, what: str) -> dict[str, Any]:
    """``data`` as a JSON object; some clients send it JSON-encoded in a string."""
    if isinstance(data, str):
        with contextlib.suppress(orjson.JSONDecodeError):
            data = orjson.loads(data)
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"{what}: 'data' must be an object")
    return data


def _optional_str(data: dict[str, Any], key: str, what: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"{what}: '{key}' must be a string")
    return value


@dataclass(slots=True)
class Subscribe:
    """A ``pusher:subscribe`` request."""

    channel: str
    auth: str | None = None
    channel_data: str | None = None


def parse_subscribe(data: JsonValue) -> Subscribe:
    body = _object(data, "pusher:subscribe")
    channel = body.get("channel")
    if not isinstance(channel, str) or not channel:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "pusher:subscribe: 'channel' is required")
    return Subscribe(
        channel,
        _optional_str(body, "auth", "pusher:subscribe"),
        _optional_str(body, "channel_data", "pusher:subscribe"),
    )


def parse_unsubscribe(data: JsonValue) -> str:
    """The channel named by a ``pusher:unsubscribe`` request."""
    channel = _object(data, "pusher:unsubscribe").get("channel")
    if not isinstance(channel, str) or not channel:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "pusher:unsubscribe: 'channel' is required")
    return channel


@dataclass(slots=True)
class Signin:
    """A ``pusher:signin`` request: ``user_data`` is the JSON text that was signed."""

    user_data: str
    auth: str


def parse_signin(data: JsonValue) -> Signin:
    body = _object(data, "pusher:signin")
    user_data = body.get("user_data")
    auth = body.get("auth")
    if not isinstance(user_data, str) or not isinstance(auth, str):
        raise ProtocolError(
            ErrorCode.UNAUTHORIZED, "pusher:signin needs 'user_data' and 'auth' strings"
        )
    return Signin(user_data, auth)


def _json_object(text: str, code: int, what: str) -> dict[str, Any]:
    """``text`` parsed as a JSON object, else ``ProtocolError(code)`` naming ``what``."""
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(code, f"'{what}' is not valid JSON") from exc
    if not isinstance(body, dict):
        raise ProtocolError(code, f"'{what}' must be a JSON object")
    return body


@dataclass(slots=True)
class PresenceMember:
    """A presence member: ``user_id`` as the client gave it (str or int), ``key`` its text form."""

    user_id: str | int
    user_info: JsonValue = None

    @property
    def key(self) -> str:
        return str(self.user_id)

    @property
    def info(self) -> JsonValue:
        """``user_info`` as sent to clients: ``{}`` when the member has none."""
        return {} if self.user_info is None else self.user_info


def parse_channel_data(channel_data: str | None) -> PresenceMember:
    """Parse the ``channel_data`` of a presence subscription."""
    if channel_data is None:
        raise ProtocolError(ErrorCode.CHANNEL_ERROR, "Presence channels need 'channel_data'")
    body = _json_object(channel_data, ErrorCode.CHANNEL_ERROR, "channel_data")
    user_id = body.get("user_id")
    if isinstance(user_id, bool) or not isinstance(user_id, str | int) or user_id == "":
        raise ProtocolError(
            ErrorCode.CHANNEL_ERROR, "'channel_data' needs a 'user_id' string or number"
        )
    return PresenceMember(user_id, body.get("user_info"))


@dataclass(slots=True)
class UserData:
    """The signed ``user_data`` of a sign-in: ``id`` plus an optional ``watchlist``."""

    id: str
    watchlist: list[str] = field(default_factory=list)


def parse_user_data(user_data: str) -> UserData:
    body = _json_object(user_data, ErrorCode.UNAUTHORIZED, "user_data")
    user_id = body.get("id")
    if not isinstance(user_id, str) or not user_id:
        raise ProtocolError(ErrorCode.UNAUTHORIZED, "'user_data' needs an 'id' string")
    watchlist = body.get("watchlist") or []
    if not isinstance(watchlist, list) or not all(isinstance(w, str) for w in watchlist):
        raise ProtocolError(ErrorCode.UNAUTHORIZED, "'watchlist' must be a list of user ids")
    return UserData(user_id, watchlist)


# --- frames the server sends -------------------------------------------------------------

PONG = dumps({"event": "pusher:pong", "data": {}})
PING = dumps({"event": "pusher:ping", "data": {}})


def connection_established(socket_id: str, activity_timeout: int) -> str:
    data = dumps({"socket_id": socket_id, "activity_timeout": activity_timeout})
    return dumps({"event": "pusher:connection_established", "data": data})


def error(code: int, message: str) -> str:
    return dumps({"event": "pusher:error", "data": {"code": code, "message": message}})


def subscription_succeeded(channel: str, members: dict[str, PresenceMember] | None = None) -> str:
    """``members`` (presence only) maps each member's key to the member."""
    if members is None:
        data = "{}"
    else:
        presence = {
            "ids": [m.user_id for m in members.values()],
            "hash": {key: m.info for key, m in members.items()},
            "count": len(members),
        }
        data = dumps({"presence": presence})
    return dumps(
        {"event": "pusher_internal:subscription_succeeded", "channel": channel, "data": data}
    )


def subscription_error(channel: str, kind: str, reason: str, status: int) -> str:
    """``kind`` is ``AuthError``, ``LimitReached`` or ``InvalidChannel``."""
    data = {"type": kind, "error": reason, "status": status}
    return dumps({"event": "pusher:subscription_error", "channel": channel, "data": data})


def member_added(channel: str, member: PresenceMember) -> str:
    data = dumps({"user_id": member.user_id, "user_info": member.info})
    return dumps({"event": "pusher_internal:member_added", "channel": channel, "data": data})


def member_removed(channel: str, member: PresenceMember) -> str:
    data = dumps({"user_id": member.user_id})
    return dumps({"event": "pusher_internal:member_removed", "channel": channel, "data": data})


def channel_event(
    event: str, channel: str, data: JsonValue, user_id: str | int | None = None
) -> str:
    """An application event. HTTP-published ``data`` is text (Pusher delivers it as a string);
    client events pass their ``data`` through as the client sent it."""
    frame: dict[str, Any] = {"event": event, "channel": channel, "data": data}
    if user_id is not None:
        frame["user_id"] = user_id
    return dumps(frame)


def signin_success(user_data: str) -> str:
    return dumps({"event": "pusher:signin_success", "data": {"user_data": user_data}})


def cache_miss(channel: str) -> str:
    return dumps({"event": "pusher:cache_miss", "channel": channel, "data": "{}"})


def subscription_count(channel: str, count: int) -> str:
    data = dumps({"subscription_count": count})
    return dumps({"event": "pusher_internal:subscription_count", "channel": channel, "data": data})


def watchlist_events(events: list[tuple[str, list[str]]]) -> str:
    """``events`` is a list of ``(name, user_ids)`` with name ``online`` or ``offline``."""
    data = dumps({"events": [{"name": name, "user_ids": ids} for name, ids in events]})
    return dumps({"event": "pusher_internal:watchlist_events", "data": data})
