"""sockudo_py.protocol.frames: parsers never raise anything but ProtocolError; encoders emit
the documented JSON shapes (PROTOCOL.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sockudo_py.protocol import ErrorCode, ProtocolError
from sockudo_py.protocol import frames as f

# --- strategies ---------------------------------------------------------------------------

# Any character, lone surrogates included (st.text() leaves them out by default).
any_text = st.text(st.characters(exclude_categories=()))

scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # unbounded: json.dumps writes ints orjson may refuse
    | st.floats()  # NaN / Infinity: json.dumps writes tokens that are not JSON
    | st.text()
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)

# Values orjson can encode and that survive a round trip unchanged (for encoder tests).
encodable_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
encodable_json = st.recursive(
    encodable_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _maybe(key: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), values.map(lambda v: {key: v}))


def _merge(*parts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parts:
        out.update(part)
    return out


# Bodies of pusher:subscribe / unsubscribe / signin: right keys, sometimes wrong types.
subscribe_like = st.builds(
    _merge,
    _maybe("channel", st.text(max_size=20) | json_values),
    _maybe("auth", st.text(max_size=20) | json_values),
    _maybe("channel_data", st.text(max_size=20) | json_values),
    _maybe("user_data", st.text(max_size=20) | json_values),
    st.dictionaries(st.text(max_size=8), json_values, max_size=2),
)
data_values = json_values | subscribe_like | subscribe_like.map(json.dumps)

# Whole frames: dicts with/without event, wrong types, nested data.
frame_like = st.builds(
    _merge,
    _maybe("event", st.sampled_from(["pusher:subscribe", "client-x", ""]) | json_values),
    _maybe("channel", st.text(max_size=20) | json_values),
    _maybe("data", data_values),
    st.dictionaries(st.text(max_size=8), json_values, max_size=2),
)
raw_json_text = (json_values | frame_like).map(json.dumps)


def _only_protocol_error(fn: Any, *args: Any) -> Any:
    """Call ``fn``; a ``ProtocolError`` is fine (returned), anything else fails the test."""
    try:
        return fn(*args)
    except ProtocolError as exc:
        assert isinstance(exc.code, int)
        assert 4000 <= exc.code < 4400
        assert isinstance(exc.message, str) and exc.message
        return exc


# --- parse_frame --------------------------------------------------------------------------


def _check_frame(raw: str | bytes) -> None:
    result = _only_protocol_error(f.parse_frame, raw)
    if isinstance(result, ProtocolError):
        assert result.code == ErrorCode.INVALID_MESSAGE
    else:
        assert isinstance(result, f.ClientFrame)
        assert isinstance(result.event, str) and result.event
        assert result.channel is None or isinstance(result.channel, str)


@given(st.binary())
def test_parse_frame_any_bytes(raw: bytes) -> None:
    _check_frame(raw)


@given(any_text)
def test_parse_frame_any_text(raw: str) -> None:
    _check_frame(raw)
    _check_frame(raw.encode("utf-8", "surrogatepass"))


@given(raw_json_text)
def test_parse_frame_jsonish(raw: str) -> None:
    _check_frame(raw)
    _check_frame(raw.encode())


@given(
    st.text(min_size=1),
    st.none() | st.text(),
    encodable_json,
)
def test_parse_frame_valid_round_trip(event: str, channel: str | None, data: Any) -> None:
    frame: dict[str, Any] = {"event": event, "data": data}
    if channel is not None:
        frame["channel"] = channel
    parsed = f.parse_frame(json.dumps(frame))
    assert (parsed.event, parsed.channel, parsed.data) == (event, channel, data)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "not json",
        "[]",
        '"pusher:ping"',
        "{}",
        '{"event": null}',
        '{"event": ""}',
        '{"event": 7}',
        '{"event": ["pusher:ping"]}',
        '{"event": "pusher:ping", "channel": 5}',
        '{"event": "pusher:ping", "channel": {}}',
        '{"event": "x"',
        b"\xff\xfe",
        '"\\ud800"',
        "[" * 5000,
    ],
)
def test_parse_frame_rejects(raw: str | bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        f.parse_frame(raw)
    assert info.value.code == ErrorCode.INVALID_MESSAGE


def test_parse_frame_minimal() -> None:
    assert f.parse_frame(b'{"event":"pusher:ping"}') == f.ClientFrame("pusher:ping", None, None)


# --- data parsers -------------------------------------------------------------------------

DATA_PARSERS = [f.parse_subscribe, f.parse_unsubscribe, f.parse_signin]
TEXT_PARSERS = [f.parse_channel_data, f.parse_user_data]


@pytest.mark.parametrize("parser", DATA_PARSERS)
@given(data=data_values | any_text)
def test_data_parsers_only_raise_protocol_error(parser: Any, data: Any) -> None:
    _only_protocol_error(parser, data)


@pytest.mark.parametrize("parser", TEXT_PARSERS)
@given(
    text=any_text
    | raw_json_text
    | st.builds(
        _merge,
        _maybe("user_id", json_values),
        _maybe("id", json_values),
        _maybe("user_info", json_values),
        _maybe("watchlist", json_values | st.lists(json_values, max_size=3)),
    ).map(json.dumps)
)
def test_text_parsers_only_raise_protocol_error(parser: Any, text: str) -> None:
    _only_protocol_error(parser, text)


def test_parse_channel_data_none() -> None:
    with pytest.raises(ProtocolError) as info:
        f.parse_channel_data(None)
    assert info.value.code == ErrorCode.CHANNEL_ERROR


@given(
    st.text(min_size=1),
    st.none() | st.text(),
    st.none() | st.text(),
    st.booleans(),
)
def test_parse_subscribe_valid(
    channel: str, auth: str | None, channel_data: str | None, as_string: bool
) -> None:
    body: dict[str, Any] = {"channel": channel}
    if auth is not None:
        body["auth"] = auth
    if channel_data is not None:
        body["channel_data"] = channel_data
    data = json.dumps(body) if as_string else body  # some clients JSON-encode data
    assert f.parse_subscribe(data) == f.Subscribe(channel, auth, channel_data)
    assert f.parse_unsubscribe(data) == channel


@pytest.mark.parametrize(
    "data",
    [None, 1, "x", "[]", [], {}, {"channel": ""}, {"channel": 3}, {"channel": "a", "auth": 1}],
)
def test_parse_subscribe_rejects(data: Any) -> None:
    with pytest.raises(ProtocolError):
        f.parse_subscribe(data)


@given(st.text(), st.text())
def test_parse_signin_valid(user_data: str, auth: str) -> None:
    body = {"user_data": user_data, "auth": auth}
    assert f.parse_signin(body) == f.Signin(user_data, auth)
    assert f.parse_signin(json.dumps(body)) == f.Signin(user_data, auth)


@pytest.mark.parametrize("data", [{}, {"user_data": "{}"}, {"auth": "k:s"}, {"user_data": 1}])
def test_parse_signin_rejects(data: Any) -> None:
    with pytest.raises(ProtocolError) as info:
        f.parse_signin(data)
    assert info.value.code == ErrorCode.UNAUTHORIZED


@given(
    st.text(min_size=1) | st.integers(min_value=-(2**63), max_value=2**63 - 1),
    encodable_json,
)
def test_parse_channel_data_keeps_user_id_as_given(user_id: str | int, info: Any) -> None:
    member = f.parse_channel_data(json.dumps({"user_id": user_id, "user_info": info}))
    assert member.user_id == user_id
    assert type(member.user_id) is type(user_id)
    assert member.key == str(user_id)
    assert member.user_info == info


@pytest.mark.parametrize(
    "text",
    [
        "",
        "x",
        "[]",
        "{}",
        '{"user_id": ""}',
        '{"user_id": true}',
        '{"user_id": 1.5}',
        '{"user_id": null}',
        '{"user_id": [1]}',
    ],
)
def test_parse_channel_data_rejects(text: str) -> None:
    with pytest.raises(ProtocolError) as info:
        f.parse_channel_data(text)
    assert info.value.code == ErrorCode.CHANNEL_ERROR


@given(st.text(min_size=1), st.lists(st.text()) | st.none())
def test_parse_user_data_valid(user_id: str, watchlist: list[str] | None) -> None:
    body: dict[str, Any] = {"id": user_id}
    if watchlist is not None:
        body["watchlist"] = watchlist
    assert f.parse_user_data(json.dumps(body)) == f.UserData(user_id, watchlist or [])


@pytest.mark.parametrize(
    "text",
    [
        "",
        "x",
        "[]",
        "{}",
        '{"id": ""}',
        '{"id": 5}',
        '{"id": "a", "watchlist": "b"}',
        '{"id": "a", "watchlist": [1]}',
    ],
)
def test_parse_user_data_rejects(text: str) -> None:
    with pytest.raises(ProtocolError) as info:
        f.parse_user_data(text)
    assert info.value.code == ErrorCode.UNAUTHORIZED


# --- encoders -----------------------------------------------------------------------------


def _decode(frame: str) -> dict[str, Any]:
    assert isinstance(frame, str)
    value = json.loads(frame)
    assert isinstance(value, dict)
    return value


def _string_data(frame: dict[str, Any]) -> Any:
    """The frame's ``data``, which must be a JSON *string*, decoded."""
    assert isinstance(frame["data"], str)
    return json.loads(frame["data"])


socket_ids = st.from_regex(r"[0-9]{1,10}\.[0-9]{1,10}", fullmatch=True)
channels = st.text(min_size=1)
user_ids = st.text(min_size=1) | st.integers(min_value=-(2**63), max_value=2**63 - 1)


def test_ping_pong() -> None:
    assert _decode(f.PING) == {"event": "pusher:ping", "data": {}}
    assert _decode(f.PONG) == {"event": "pusher:pong", "data": {}}


@given(socket_ids, st.integers(min_value=1, max_value=2**31))
def test_connection_established(socket_id: str, timeout: int) -> None:
    frame = _decode(f.connection_established(socket_id, timeout))
    assert frame["event"] == "pusher:connection_established"
    assert set(frame) == {"event", "data"}
    assert _string_data(frame) == {"socket_id": socket_id, "activity_timeout": timeout}


@given(st.integers(min_value=4000, max_value=4399), st.text())
def test_error(code: int, message: str) -> None:
    frame = _decode(f.error(code, message))
    assert frame == {"event": "pusher:error", "data": {"code": code, "message": message}}


@given(channels)
def test_subscription_succeeded_plain(channel: str) -> None:
    frame = _decode(f.subscription_succeeded(channel))
    assert frame["event"] == "pusher_internal:subscription_succeeded"
    assert frame["channel"] == channel
    assert frame["data"] == "{}"


members_strategy = st.lists(st.builds(f.PresenceMember, user_ids, encodable_json), max_size=8).map(
    lambda ms: {m.key: m for m in ms}
)


@given(channels, members_strategy)
def test_subscription_succeeded_presence(
    channel: str, members: dict[str, f.PresenceMember]
) -> None:
    frame = _decode(f.subscription_succeeded(channel, members))
    assert frame["event"] == "pusher_internal:subscription_succeeded"
    assert frame["channel"] == channel
    data = _string_data(frame)
    assert set(data) == {"presence"}
    presence = data["presence"]
    assert set(presence) == {"ids", "hash", "count"}
    assert presence["count"] == len(members) == len(presence["ids"]) == len(presence["hash"])
    # ids keep the type each client gave; hash is keyed by the text form.
    assert presence["ids"] == [m.user_id for m in members.values()]
    assert {str(i) for i in presence["ids"]} == set(presence["hash"])
    # a member without user_info is shown with {} (as in member_added)
    assert presence["hash"] == {k: m.info for k, m in members.items()}


@given(
    channels,
    st.sampled_from(["AuthError", "LimitReached", "InvalidChannel"]),
    st.text(),
    st.sampled_from([401, 403, 4100, 4300]),
)
def test_subscription_error(channel: str, kind: str, reason: str, status: int) -> None:
    frame = _decode(f.subscription_error(channel, kind, reason, status))
    assert frame["event"] == "pusher:subscription_error"
    assert frame["channel"] == channel
    data = frame["data"]
    if isinstance(data, str):  # pusher-js accepts either form
        data = json.loads(data)
    assert data == {"type": kind, "error": reason, "status": status}


@given(channels, st.builds(f.PresenceMember, user_ids, encodable_json))
def test_member_added_and_removed(channel: str, member: f.PresenceMember) -> None:
    added = _decode(f.member_added(channel, member))
    assert added["event"] == "pusher_internal:member_added"
    assert added["channel"] == channel
    data = _string_data(added)
    assert data["user_id"] == member.user_id
    assert data["user_info"] == ({} if member.user_info is None else member.user_info)

    removed = _decode(f.member_removed(channel, member))
    assert removed["event"] == "pusher_internal:member_removed"
    assert removed["channel"] == channel
    assert _string_data(removed) == {"user_id": member.user_id}


@given(st.text(min_size=1), channels, st.text(), st.none() | st.text())
def test_channel_event_keeps_data_exactly(
    event: str, channel: str, data: str, user_id: str | None
) -> None:
    frame = _decode(f.channel_event(event, channel, data, user_id))
    assert frame["event"] == event
    assert frame["channel"] == channel
    assert frame["data"] == data  # the exact string, never re-parsed
    if user_id is None:
        assert "user_id" not in frame
    else:
        assert frame["user_id"] == user_id


@pytest.mark.parametrize(
    "data", ['{"a":"b"}', 'He said "hi" \\ o/', "héllo 😀 \u2028 \x00 \n", "", "null", "[1,2]"]
)
def test_channel_event_tricky_data(data: str) -> None:
    assert _decode(f.channel_event("e", "c", data))["data"] == data


@given(st.text())
def test_signin_success(user_data: str) -> None:
    frame = _decode(f.signin_success(user_data))
    assert frame == {"event": "pusher:signin_success", "data": {"user_data": user_data}}


@given(channels)
def test_cache_miss(channel: str) -> None:
    frame = _decode(f.cache_miss(channel))
    assert frame["event"] == "pusher:cache_miss"
    assert frame["channel"] == channel
    assert _string_data(frame) == {}


@given(channels, st.integers(min_value=0, max_value=2**40))
def test_subscription_count(channel: str, count: int) -> None:
    frame = _decode(f.subscription_count(channel, count))
    assert frame["event"] == "pusher_internal:subscription_count"
    assert frame["channel"] == channel
    assert _string_data(frame) == {"subscription_count": count}


@given(st.lists(st.tuples(st.sampled_from(["online", "offline"]), st.lists(st.text()))))
def test_watchlist_events(events: list[tuple[str, list[str]]]) -> None:
    frame = _decode(f.watchlist_events(events))
    assert frame["event"] == "pusher_internal:watchlist_events"
    assert _string_data(frame) == {
        "events": [{"name": name, "user_ids": ids} for name, ids in events]
    }
