"""Bad input on the WebSocket: each case checks the answer, that the same socket is still open
where the protocol keeps it open, and that a fresh client is served normally afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from interop_server import RunningServer, ServerFactory
from pusher_ws import PusherWs, api, close_all, data_of, publish

MAX_PAYLOAD_KB = 16
MAIN = {"id": "1001", "key": "key-1001", "secret": "secret-1001", "enabled": True,
        "enable_client_messages": True}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with ServerFactory(Path(tmp_path_factory.mktemp("bad"))) as factory:
        yield factory({"websocket_max_payload_kb": MAX_PAYLOAD_KB}, apps=[MAIN])


async def connect(server: RunningServer) -> PusherWs:
    return await PusherWs.connect(server, MAIN["key"], MAIN["secret"])


async def server_still_fine(server: RunningServer) -> None:
    """A fresh client connects, subscribes, receives a published event and pings."""
    async with await connect(server) as fresh:
        await fresh.subscribe("health-check")
        await publish(server, MAIN, "health-check", "ok", "1")
        assert (await fresh.expect("ok", "health-check"))["data"] == "1"
        await fresh.assert_open()


async def expect_protocol_error(c: PusherWs) -> dict[str, Any]:
    """A ``pusher:error`` in the 4000 range (not closing); the socket still answers pings."""
    err = await c.expect("pusher:error")
    code = err["data"]["code"]
    assert 4000 <= code < 4100, err
    assert isinstance(err["data"]["message"], str)
    await c.assert_open()
    return err


@pytest.mark.parametrize(
    "raw",
    ["{not json", "", "{\"event\": \"pusher:ping\"", "\x00\x01", "[" * 5000 + "]" * 5000],
    ids=["truncated", "empty", "unterminated", "control-chars", "deeply-nested"],
)
async def test_malformed_json(srv: RunningServer, raw: str) -> None:
    async with await connect(srv) as c:
        await c.send_raw(raw)
        await expect_protocol_error(c)
    await server_still_fine(srv)


@pytest.mark.parametrize("raw", ["[1, 2]", "42", "\"pusher:ping\"", "null", "true"])
async def test_non_object_json(srv: RunningServer, raw: str) -> None:
    async with await connect(srv) as c:
        await c.send_raw(raw)
        await expect_protocol_error(c)
    await server_still_fine(srv)


@pytest.mark.parametrize(
    "frame",
    [{"data": {}}, {"event": None}, {"event": 5}, {"event": ""}, {"event": ["pusher:ping"]},
     {"event": "pusher:subscribe", "channel": 5, "data": {"channel": "x"}}],
    ids=["missing", "null", "number", "empty", "list", "channel-not-string"],
)
async def test_missing_or_wrong_event(srv: RunningServer, frame: dict[str, Any]) -> None:
    async with await connect(srv) as c:
        await c.send_raw(json.dumps(frame))
        await expect_protocol_error(c)
    await server_still_fine(srv)


async def test_unknown_event(srv: RunningServer) -> None:
    async with await connect(srv) as c:
        for event in ("pusher:no_such_thing", "something-else", "pusher_internal:member_added"):
            await c.send(event, {"a": 1})
        # the socket stays open; errors, if any, are non-closing 4000-range ones
        await c.assert_open()
        for frame in await c.drain(0.1):
            assert frame["event"] == "pusher:error", frame
            assert 4000 <= frame["data"]["code"] < 4400, frame
    await server_still_fine(srv)


async def test_binary_frames(srv: RunningServer) -> None:
    async with await connect(srv) as c:
        # a binary frame holding a valid frame is handled like text
        await c.send_raw(json.dumps({"event": "pusher:ping", "data": {}}).encode())
        await c.expect("pusher:pong")
        await c.send_raw(b"\xff\xfe not json \x00")
        await expect_protocol_error(c)
    await server_still_fine(srv)


async def test_frame_over_max_payload_closes_1009(srv: RunningServer) -> None:
    async with await connect(srv) as c:
        # just under the limit is fine
        under = json.dumps({"event": "pusher:ping", "data": {"pad": "x" * (15 * 1024)}})
        await c.send_raw(under)
        await c.expect("pusher:pong")
        over = json.dumps({"event": "pusher:ping", "data": {"pad": "x" * (17 * 1024)}})
        await c.send_raw(over)
        assert await c.expect_close() == 1009
    await server_still_fine(srv)


@pytest.mark.parametrize(
    "channel",
    ["bad name!", "ümlaut", "tab\there", "#server-to-user-", "private-" + "c" * 193,
     "c" * 201],
    ids=["space", "non-ascii", "tab", "empty-user-id", "private-201", "public-201"],
)
async def test_invalid_channel_name(srv: RunningServer, channel: str) -> None:
    async with await connect(srv) as c:
        await c.subscribe(channel, wait=False, sign=channel.startswith("private-"))
        err = await c.expect("pusher:subscription_error", channel)
        assert data_of(err)["type"] == "InvalidChannel", err
        await c.expect_none("pusher_internal:subscription_succeeded", within=0.1)
        await c.assert_open()
    await server_still_fine(srv)


async def test_channel_name_at_limit_is_fine(srv: RunningServer) -> None:
    async with await connect(srv) as c:
        await c.subscribe("c" * 200)
        await c.subscribe("private-" + "p" * 192)


@pytest.mark.parametrize(
    "data",
    ["not json at all", 42, [], None, {}, {"channel": ""}, {"channel": 5},
     {"channel": ["a"]}, {"channel": "private-x", "auth": 5},
     {"channel": "presence-x", "auth": "k:s", "channel_data": {"user_id": "u"}}],
    ids=["string", "number", "list", "null", "no-channel", "empty-channel", "channel-number",
         "channel-list", "auth-number", "channel-data-object"],
)
async def test_subscribe_with_wrong_types(srv: RunningServer, data: Any) -> None:
    async with await connect(srv) as c:
        await c.send_raw(json.dumps({"event": "pusher:subscribe", "data": data}))
        await expect_protocol_error(c)
        await c.expect_none("pusher_internal:subscription_succeeded", within=0.1)
    await server_still_fine(srv)


async def test_double_subscribe(srv: RunningServer) -> None:
    a, b = await connect(srv), await connect(srv)
    try:
        for _ in range(2):
            frame = await a.subscribe("twice")
            assert frame is not None and frame["data"] == "{}"
        await publish(srv, MAIN, "twice", "once", "1")
        await a.expect("once", "twice")
        await a.expect_none("once", within=0.3)

        # presence: succeeded again with the same member list, no second member_added
        await b.subscribe_presence("presence-twice", "ub")
        first = await a.subscribe_presence("presence-twice", "ua")
        await b.expect("pusher_internal:member_added", "presence-twice")
        again = await a.subscribe_presence("presence-twice", "ua")
        assert again == first and again["count"] == 2
        await b.expect_none("pusher_internal:member_added", within=0.3)
        # one unsubscribe leaves the channel (no reference counting of subscribes)
        await a.unsubscribe("presence-twice")
        removed = await b.expect("pusher_internal:member_removed", "presence-twice")
        assert data_of(removed) == {"user_id": "ua"}
    finally:
        await close_all(a, b)
    await server_still_fine(srv)


async def test_presence_resubscribe_with_other_user(srv: RunningServer) -> None:
    """Re-subscribing is idempotent: a second, validly signed subscribe with another
    ``user_id`` changes nothing, so its answer lists the channel's real members."""
    a, b = await connect(srv), await connect(srv)
    try:
        await b.subscribe_presence("presence-resub", "ub")
        first = await a.subscribe_presence("presence-resub", "ua")
        assert first["count"] == 2
        await b.expect("pusher_internal:member_added", "presence-resub")
        other = await a.subscribe_presence("presence-resub", "uz")
        await b.expect_none("pusher_internal:member_added", within=0.2)
        users = await api(srv, MAIN, "GET", "/apps/1001/channels/presence-resub/users")
        assert sorted(u["id"] for u in users.json()["users"]) == ["ua", "ub"]
        assert other == first, f"answer to the re-subscribe: {other}; real members: ua, ub"
    finally:
        await close_all(a, b)


async def test_unsubscribe_unknown_channel(srv: RunningServer) -> None:
    async with await connect(srv) as c:
        await c.unsubscribe("never-subscribed")
        await c.unsubscribe("private-never")
        await c.assert_open()
        await c.expect_none("pusher:error", within=0.1)
        await c.expect_none("pusher:subscription_error", within=0.01)
    await server_still_fine(srv)


async def test_client_event_where_not_allowed(srv: RunningServer) -> None:
    a, b = await connect(srv), await connect(srv)
    try:
        await a.subscribe("public-ce")
        await b.subscribe("public-ce")
        for channel in ("public-ce", "private-not-joined", None):
            await a.send("client-x", {"v": 1}, channel)
            err = await a.expect("pusher:error")
            assert err["data"]["code"] == 4301, err
        # a client-* event with a non-object/odd payload on a channel it may not use
        await a.send_raw(json.dumps({"event": "client-x", "channel": "public-ce"}))
        err = await a.expect("pusher:error")
        assert err["data"]["code"] == 4301, err
        await a.assert_open()
        await b.expect_none("client-x", within=0.2)
    finally:
        await close_all(a, b)
    await server_still_fine(srv)
