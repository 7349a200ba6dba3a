"""End-to-end WebSocket protocol tests: raw Pusher frames against a real sockudo-py process.

Each test asserts the exact frames and close codes PROTOCOL.md decides. Servers are shared per
module (one per configuration); apps differ per test where flags must differ.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pusher
import pytest
from interop_server import RunningServer, ServerFactory
from pusher_ws import PusherWs, close_all, data_of, publish

ACTIVITY_TIMEOUT = 45


def make_app(app_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": app_id, "key": f"key-{app_id}", "secret": f"secret-{app_id}",
            "enabled": True, **fields}


MAIN = make_app("1001", enable_client_messages=True)
COUNT = make_app("1002", enable_subscription_count=True, enable_client_messages=True)
NO_CLIENT = make_app("1003", enable_client_messages=False)
WATCH = make_app("1004", enable_watchlist_events=True, enable_user_authentication=True)
LIMITS = make_app(
    "1005",
    enable_client_messages=True,
    max_presence_members_per_channel=2,
    max_presence_member_size_in_kb=1,
    max_client_events_per_second=3,
    max_event_name_length=30,
)
DISABLED = make_app("1007", enabled=False)
CAPPED = make_app("1008", max_connections=2)
ORIGIN = make_app("1009", allowed_origins=["https://good.example"])
APPS = [MAIN, COUNT, NO_CLIENT, WATCH, LIMITS, DISABLED, CAPPED, ORIGIN]

PLAIN = make_app("2001")
USER_AUTH = make_app("2002", enable_user_authentication=True)


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    with ServerFactory(Path(tmp_path_factory.mktemp("ws"))) as f:
        yield f


@pytest.fixture(scope="module")
def srv(factory: ServerFactory) -> RunningServer:
    return factory({"activity_timeout": ACTIVITY_TIMEOUT}, apps=APPS)


@pytest.fixture(scope="module")
def timer_srv(factory: ServerFactory) -> RunningServer:
    """Short timers: activity 1 s, user authentication 1 s."""
    return factory({"activity_timeout": 1, "user_authentication_timeout": 1},
                   apps=[PLAIN, USER_AUTH])


@pytest.fixture(scope="module")
def pong_srv(factory: ServerFactory) -> RunningServer:
    """Activity timeout 1 s and ``websocket.pong_timeout`` 1 s."""
    return factory({"activity_timeout": 1, "websocket": {"pong_timeout": 1}}, apps=[PLAIN])


@pytest.fixture(scope="module")
def node_limited_srv(factory: ServerFactory) -> RunningServer:
    return factory({"max_connections": 2}, apps=[MAIN])


async def connect(server: RunningServer, app: dict[str, Any] = MAIN, **kw: Any) -> PusherWs:
    return await PusherWs.connect(server, app["key"], app["secret"], **kw)


def sdk(server: RunningServer, app: dict[str, Any]) -> pusher.Pusher:
    return pusher.Pusher(app_id=app["id"], key=app["key"], secret=app["secret"],
                         host=server.host, port=server.port, ssl=False, timeout=5)


# --------------------------------------------------------------------------- connection


async def test_connection_established(srv: RunningServer) -> None:
    client = await PusherWs.open(srv, MAIN["key"], MAIN["secret"])
    try:
        raw = json.loads(await asyncio.wait_for(client.ws.recv(), 3))
        assert raw["event"] == "pusher:connection_established"
        assert isinstance(raw["data"], str), "data must be a JSON string"
        data = json.loads(raw["data"])
        assert set(data) == {"socket_id", "activity_timeout"}
        assert re.fullmatch(r"\d+\.\d+", data["socket_id"])
        assert data["activity_timeout"] == ACTIVITY_TIMEOUT
    finally:
        await client.close()


async def test_connect_without_query_and_other_protocol_versions(srv: RunningServer) -> None:
    clients = [await connect(srv, query=q) for q in ("", "?protocol=5", "?protocol=6&client=x")]
    ids = {c.socket_id for c in clients}
    assert len(ids) == 3
    await close_all(*clients)


async def test_ping_pong(srv: RunningServer) -> None:
    async with await connect(srv) as c:
        await c.send("pusher:ping")
        pong = await c.expect("pusher:pong", only=True)
        assert pong["event"] == "pusher:pong"
        # data given as a string works too
        await c.send("pusher:ping", "{}")
        await c.expect("pusher:pong", only=True)


async def test_server_pings_after_activity_timeout_and_pong_keeps_socket(
    timer_srv: RunningServer,
) -> None:
    async with await connect(timer_srv, PLAIN) as c:
        assert c.established["activity_timeout"] == 1
        started = time.monotonic()
        for _ in range(2):
            ping = await c.expect("pusher:ping", timeout=3)
            assert ping["event"] == "pusher:ping"
            await c.send("pusher:pong")
        assert time.monotonic() - started >= 1.5  # two idle periods of ~1 s each
        await c.assert_open()
        assert c.close_code() is None


async def test_client_frames_count_as_activity(timer_srv: RunningServer) -> None:
    """A client that keeps talking (pusher:ping every 0.4 s) is never pinged by the server."""
    async with await connect(timer_srv, PLAIN) as c:
        for _ in range(6):
            await asyncio.sleep(0.4)
            await c.send("pusher:ping")
            await c.expect("pusher:pong")
        await c.expect_none("pusher:ping", within=0.01)


async def test_websocket_level_pings_count_as_activity(timer_srv: RunningServer) -> None:
    """PROTOCOL.md: WebSocket-level ping/pong frames count as activity, so a client sending
    only protocol-level ping frames (every 0.4 s) is not sent ``pusher:ping``."""
    async with await connect(timer_srv, PLAIN) as c:
        for _ in range(6):
            await asyncio.sleep(0.4)
            pong_waiter = await c.ws.ping()
            await asyncio.wait_for(pong_waiter, 2)
        await c.expect_none("pusher:ping", within=0.01)


async def test_no_pong_closes_4201(pong_srv: RunningServer) -> None:
    async with await connect(pong_srv, PLAIN) as c:
        ping = await c.expect("pusher:ping", timeout=3)
        pinged_at = time.monotonic()
        assert ping["event"] == "pusher:ping"
        assert await c.expect_close(timeout=3) == 4201
        assert time.monotonic() - pinged_at >= 0.9  # not before websocket.pong_timeout


async def test_pong_within_pong_timeout_keeps_socket(pong_srv: RunningServer) -> None:
    async with await connect(pong_srv, PLAIN) as c:
        for _ in range(2):
            await c.expect("pusher:ping", timeout=3)
            await asyncio.sleep(0.3)
            await c.send("pusher:pong")
        await c.assert_open()


# --------------------------------------------------------------------------- admission


async def _refused(server: RunningServer, key: str, **kw: Any) -> tuple[dict[str, Any], int]:
    client = await PusherWs.open(server, key, **kw)
    code = await client.expect_close()
    errors = [f for f in client.pending if f.get("event") == "pusher:error"]
    assert errors, f"no pusher:error before the close; frames: {client.pending}"
    assert not any(f["event"] == "pusher:connection_established" for f in client.pending)
    assert code is not None
    return errors[0], code


async def test_unknown_key_4001(srv: RunningServer) -> None:
    error, code = await _refused(srv, "no-such-key")
    assert error["data"]["code"] == 4001
    assert code == 4001


async def test_disabled_app_4003(srv: RunningServer) -> None:
    error, code = await _refused(srv, DISABLED["key"])
    assert error["data"]["code"] == 4003
    assert code == 4003


async def test_app_max_connections_4004(srv: RunningServer) -> None:
    first, second = await connect(srv, CAPPED), await connect(srv, CAPPED)
    error, code = await _refused(srv, CAPPED["key"])
    assert (error["data"]["code"], code) == (4004, 4004)
    await first.close()
    # the slot is given back once the server noticed the close
    deadline = time.monotonic() + 3
    while True:
        try:
            third = await connect(srv, CAPPED)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
    await close_all(second, third)


async def test_node_max_connections_4100(node_limited_srv: RunningServer) -> None:
    a, b = await connect(node_limited_srv), await connect(node_limited_srv)
    error, code = await _refused(node_limited_srv, MAIN["key"])
    assert (error["data"]["code"], code) == (4100, 4100)
    await close_all(a, b)


async def test_allowed_origins(srv: RunningServer) -> None:
    for origin in ("https://evil.example", None):
        error, code = await _refused(srv, ORIGIN["key"], origin=origin)
        assert (error["data"]["code"], code) == (4009, 4009), origin
    async with await connect(srv, ORIGIN, origin="https://good.example") as ok:
        await ok.assert_open()


# --------------------------------------------------------------------------- channels


async def test_public_channel_subscribe_and_receive(srv: RunningServer) -> None:
    async with await connect(srv) as c:
        frame = await c.subscribe("public-news")
        assert frame == {"event": "pusher_internal:subscription_succeeded",
                         "channel": "public-news", "data": "{}"}
        await publish(srv, MAIN, "public-news", "headline", {"title": "hi"})
        event = await c.expect("headline", "public-news")
        assert event == {"event": "headline", "channel": "public-news",
                         "data": json.dumps({"title": "hi"}, separators=(",", ":"))}
        await c.unsubscribe("public-news")
        await c.assert_open()
        await publish(srv, MAIN, "public-news", "headline", "again")
        await c.expect_none("headline")


async def test_private_channel_auth(srv: RunningServer) -> None:
    async with await connect(srv) as c, await connect(srv) as other:
        channel = "private-orders"
        # no auth, wrong signature, signature of another socket, key of another app
        bad_auths: list[str | None] = [
            None,
            f"{MAIN['key']}:{'0' * 64}",
            other.auth(channel),
            c.auth(channel).replace(MAIN["key"], COUNT["key"], 1),
        ]
        for auth in bad_auths:
            await c.subscribe(channel, auth=auth, sign=False, wait=False)
            err = await c.expect("pusher:subscription_error", channel)
            assert data_of(err)["type"] == "AuthError", err
            assert data_of(err)["status"] == 401, err
        await c.assert_open()
        frame = await c.subscribe(channel)
        assert frame is not None and frame["data"] == "{}"
        await publish(srv, MAIN, channel, "order", "x")
        assert (await c.expect("order", channel))["data"] == "x"


async def test_private_encrypted_channel(srv: RunningServer) -> None:
    channel = "private-encrypted-vault"
    async with await connect(srv) as a, await connect(srv) as b:
        await a.subscribe(channel, auth=f"{MAIN['key']}:{'1' * 64}", wait=False)
        err = await a.expect("pusher:subscription_error", channel)
        assert data_of(err)["type"] == "AuthError"
        await a.subscribe(channel)
        await b.subscribe(channel)
        # the server relays ciphertext untouched
        cipher = json.dumps({"nonce": "bm9uY2U=", "ciphertext": "Y2lwaGVy"})
        await publish(srv, MAIN, channel, "secret", cipher)
        assert (await b.expect("secret", channel))["data"] == cipher
        # client events are refused on encrypted channels
        await a.send("client-x", {"a": 1}, channel)
        err = await a.expect("pusher:error")
        assert err["data"]["code"] == 4301
        await b.expect_none("client-x")


async def test_presence_members(srv: RunningServer) -> None:
    channel = "presence-room"
    a1, a2, b = await connect(srv), await connect(srv), await connect(srv)
    try:
        p = await a1.subscribe_presence(channel, "alice", {"name": "Alice"})
        assert p == {"ids": ["alice"], "hash": {"alice": {"name": "Alice"}}, "count": 1}

        p = await b.subscribe_presence(channel, 42, {"name": "Bob"})
        assert p["count"] == 2
        assert sorted(map(str, p["ids"])) == ["42", "alice"]
        assert 42 in p["ids"], "a numeric user_id is sent back as a number"
        assert p["hash"] == {"alice": {"name": "Alice"}, "42": {"name": "Bob"}}
        added = await a1.expect("pusher_internal:member_added", channel)
        assert data_of(added) == {"user_id": 42, "user_info": {"name": "Bob"}}
        await b.expect_none("pusher_internal:member_added")  # no echo of one's own join

        # alice's second socket: no member_added, the count stays 2
        p = await a2.subscribe_presence(channel, "alice", {"name": "Alice"})
        assert p["count"] == 2
        await b.expect_none("pusher_internal:member_added", within=0.3)

        # alice's first socket leaves: she is still present through a2
        await a1.unsubscribe(channel)
        await b.expect_none("pusher_internal:member_removed", within=0.3)
        # her last socket goes away (disconnect): member_removed
        await a2.close()
        removed = await b.expect("pusher_internal:member_removed", channel)
        assert data_of(removed) == {"user_id": "alice"}
    finally:
        await close_all(a1, a2, b)


async def test_presence_bad_channel_data(srv: RunningServer) -> None:
    channel = "presence-bad"
    async with await connect(srv) as c:
        for channel_data in (None, "not json", json.dumps({"user_info": {}}), "[]"):
            auth = c.auth(channel, channel_data)
            await c.subscribe(channel, auth=auth, channel_data=channel_data, wait=False)
            err = await c.expect("pusher:subscription_error", channel)
            assert data_of(err)["type"] == "AuthError", (channel_data, err)
        # signed channel_data that differs from what is sent
        signed = json.dumps({"user_id": "u1"})
        await c.subscribe(channel, auth=c.auth(channel, signed),
                          channel_data=json.dumps({"user_id": "admin"}), wait=False)
        err = await c.expect("pusher:subscription_error", channel)
        assert data_of(err)["type"] == "AuthError"
        await c.assert_open()


async def test_presence_member_size_limit(srv: RunningServer) -> None:
    channel = "presence-big"
    async with await connect(srv, LIMITS) as c:
        data = json.dumps({"user_id": "u", "user_info": {"blob": "x" * 1100}})
        await c.subscribe(channel, channel_data=data, wait=False)
        err = await c.expect("pusher:subscription_error", channel)
        assert data_of(err)["type"] == "LimitReached", err
        await c.expect_none("pusher_internal:subscription_succeeded", channel)
        await c.assert_open()
        # small enough is fine
        await c.subscribe_presence(channel, "u", {"blob": "x" * 100})


async def test_presence_members_per_channel_limit(srv: RunningServer) -> None:
    channel = "presence-full"
    a, b, c, a2 = [await connect(srv, LIMITS) for _ in range(4)]
    try:
        await a.subscribe_presence(channel, "a")
        await b.subscribe_presence(channel, "b")
        await a.expect("pusher_internal:member_added", channel)
        data = json.dumps({"user_id": "c"})
        await c.subscribe(channel, channel_data=data, wait=False)
        err = await c.expect("pusher:subscription_error", channel)
        assert data_of(err)["type"] == "LimitReached", err
        await c.assert_open()
        await a.expect_none("pusher_internal:member_added", within=0.2)
        # a user already present may add a socket
        p = await a2.subscribe_presence(channel, "a")
        assert p["count"] == 2
    finally:
        await close_all(a, b, c, a2)


async def test_cache_channel_replay_and_miss(srv: RunningServer) -> None:
    async with await connect(srv) as c:
        await c.subscribe("cache-prices")
        miss = await c.expect("pusher:cache_miss", "cache-prices")
        assert miss["channel"] == "cache-prices"
        await c.expect_none("price", "cache-prices")

    await publish(srv, MAIN, "cache-prices", "price", "1")
    await publish(srv, MAIN, "cache-prices", "price", "2")
    await publish(srv, MAIN, "private-cache-stock", "level", {"n": 3})
    async with await connect(srv) as c:
        await c.subscribe("cache-prices")
        replay = await c.expect("price", "cache-prices")
        assert replay == {"event": "price", "channel": "cache-prices", "data": "2"}
        await c.expect_none("pusher:cache_miss")
        await c.expect_none("price", within=0.2)  # only the last event

        await c.subscribe("private-cache-stock")
        replay = await c.expect("level", "private-cache-stock")
        assert data_of(replay) == {"n": 3}
        # client events are not cached: a later subscriber still gets the HTTP event
        await c.send("client-level", {"n": 99}, "private-cache-stock")
        await c.assert_open()
    async with await connect(srv) as late:
        await late.subscribe("private-cache-stock")
        replay = await late.expect("level", "private-cache-stock")
        assert data_of(replay) == {"n": 3}
        await late.expect_none("client-level", within=0.1)


async def test_server_to_user_channel_needs_signin(srv: RunningServer) -> None:
    channel = "#server-to-user-u1"
    async with await connect(srv) as c:
        await c.subscribe(channel, wait=False)
        err = await c.expect("pusher:subscription_error", channel)
        assert data_of(err)["type"] == "AuthError"
        await c.signin("u2")
        await c.subscribe(channel, wait=False)
        err = await c.expect("pusher:subscription_error", channel)
        assert data_of(err)["type"] == "AuthError"
    async with await connect(srv) as c:
        await c.signin("u1")
        await c.subscribe(channel)
        await publish(srv, MAIN, channel, "note", "for u1")
        assert (await c.expect("note", channel))["data"] == "for u1"


async def test_signin_success_and_bad_signin(srv: RunningServer) -> None:
    async with await connect(srv) as c:
        # bad signature
        bad = c.signin_data("mallory")
        bad["auth"] = bad["auth"][:-4] + "0000"
        await c.send("pusher:signin", bad)
        err = await c.expect("pusher:error")
        assert err["data"]["code"] == 4009
        # signed for another socket
        async with await connect(srv) as other:
            await c.send("pusher:signin", other.signin_data("mallory"))
        err = await c.expect("pusher:error")
        assert err["data"]["code"] == 4009
        # missing fields
        await c.send("pusher:signin", {"user_data": json.dumps({"id": "x"})})
        err = await c.expect("pusher:error")
        assert err["data"]["code"] == 4009
        await c.assert_open()
        await c.expect_none("pusher:signin_success")

        good = c.signin_data("alice", watchlist=["bob"], user_info={"name": "Alice"})
        await c.send("pusher:signin", good)
        ok = await c.expect("pusher:signin_success")
        assert ok == {"event": "pusher:signin_success",
                      "data": {"user_data": good["user_data"]}}
        await c.assert_open()
        # the app has no enable_watchlist_events: no watchlist frames
        await c.expect_none("pusher_internal:watchlist_events", within=0.1)


async def test_user_authentication_timeout(timer_srv: RunningServer) -> None:
    idle = await connect(timer_srv, USER_AUTH)
    signed = await connect(timer_srv, USER_AUTH)
    private = await connect(timer_srv, USER_AUTH)
    public_only = await connect(timer_srv, USER_AUTH)
    other_app = await connect(timer_srv, PLAIN)
    try:
        await signed.signin("u1")
        await private.subscribe("private-x")
        await public_only.subscribe("public-x")
        codes = await asyncio.gather(idle.expect_close(4), public_only.expect_close(4))
        assert codes == [4009, 4009]
        for closed in (idle, public_only):
            err = [f for f in closed.pending if f["event"] == "pusher:error"]
            assert err and err[0]["data"]["code"] == 4009, closed.pending
        for alive in (signed, private, other_app):
            await alive.assert_open()
            assert alive.close_code() is None
    finally:
        await close_all(idle, signed, private, public_only, other_app)


async def test_watchlist_events(srv: RunningServer) -> None:
    a1 = await connect(srv, WATCH)
    watcher = await connect(srv, WATCH)
    b = await connect(srv, WATCH)
    a2 = await connect(srv, WATCH)
    try:
        await a1.signin("wl-a")
        await watcher.signin("wl-w", watchlist=["wl-a", "wl-b"])
        first = await watcher.expect("pusher_internal:watchlist_events")
        events = {e["name"]: e["user_ids"] for e in data_of(first)["events"]}
        assert events.get("online") == ["wl-a"]
        assert events.get("offline") == ["wl-b"]

        await b.signin("wl-b")
        online = await watcher.expect("pusher_internal:watchlist_events")
        assert data_of(online) == {"events": [{"name": "online", "user_ids": ["wl-b"]}]}

        # a second socket of an online user: no new notification; closing it: none either
        await a2.signin("wl-a")
        await watcher.expect_none("pusher_internal:watchlist_events", within=0.3)
        await a2.close()
        await watcher.expect_none("pusher_internal:watchlist_events", within=0.3)

        await b.close()
        offline = await watcher.expect("pusher_internal:watchlist_events")
        assert data_of(offline) == {"events": [{"name": "offline", "user_ids": ["wl-b"]}]}
        await a1.close()
        offline = await watcher.expect("pusher_internal:watchlist_events")
        assert data_of(offline) == {"events": [{"name": "offline", "user_ids": ["wl-a"]}]}
    finally:
        await close_all(a1, watcher, b, a2)


async def test_subscription_count(srv: RunningServer) -> None:
    channel = "counted"
    a, b = await connect(srv, COUNT), await connect(srv, COUNT)
    try:
        await a.subscribe(channel)
        count = await a.expect("pusher_internal:subscription_count", channel)
        assert data_of(count) == {"subscription_count": 1}
        await b.subscribe(channel)
        for c in (a, b):
            count = await c.expect("pusher_internal:subscription_count", channel)
            assert data_of(count) == {"subscription_count": 2}
        await b.unsubscribe(channel)
        count = await a.expect("pusher_internal:subscription_count", channel)
        assert data_of(count) == {"subscription_count": 1}
        # presence channels do not get subscription_count; apps without the flag neither
        await a.subscribe_presence("presence-counted", "u")
        await a.expect_none("pusher_internal:subscription_count", "presence-counted")
        async with await connect(srv) as plain:
            await plain.subscribe(channel)
            await plain.expect_none("pusher_internal:subscription_count")
    finally:
        await close_all(a, b)


# --------------------------------------------------------------------------- client events


async def test_client_events_private_and_presence(srv: RunningServer) -> None:
    a, b = await connect(srv), await connect(srv)
    try:
        await a.subscribe("private-chat")
        await b.subscribe("private-chat")
        await a.send("client-typing", {"who": "a"}, "private-chat")
        got = await b.expect("client-typing", "private-chat")
        assert got == {"event": "client-typing", "channel": "private-chat",
                       "data": {"who": "a"}}
        await a.expect_none("client-typing")  # never echoed to the sender

        await a.subscribe_presence("presence-chat", "user-a")
        await b.subscribe_presence("presence-chat", "user-b")
        await a.send("client-wave", "hi", "presence-chat")
        got = await b.expect("client-wave", "presence-chat")
        assert got["data"] == "hi"
        assert got["user_id"] == "user-a"
        await a.expect_none("client-wave")
    finally:
        await close_all(a, b)


async def _rejected(c: PusherWs, event: str, channel: str | None, data: Any = None) -> None:
    await c.send(event, {"x": 1} if data is None else data, channel)
    err = await c.expect("pusher:error")
    assert err["data"]["code"] == 4301, err
    await c.assert_open()


async def test_client_event_rejections(srv: RunningServer) -> None:
    async with await connect(srv, NO_CLIENT) as off:
        await off.subscribe("private-c")
        await _rejected(off, "client-x", "private-c")
    a, b = await connect(srv), await connect(srv)
    try:
        await a.subscribe("public-c")
        await b.subscribe("public-c")
        await _rejected(a, "client-x", "public-c")           # public channel
        await b.subscribe("private-not-a")
        await _rejected(a, "client-x", "private-not-a")      # not subscribed
        await _rejected(a, "client-x", None)                 # no channel
        for c in (a, b):
            await c.drain(0.1)
        await b.expect_none("client-x")
    finally:
        await close_all(a, b)


async def test_client_event_name_too_long_and_rate_limit(srv: RunningServer) -> None:
    a, b = await connect(srv, LIMITS), await connect(srv, LIMITS)
    try:
        await a.subscribe("private-limits")
        await b.subscribe("private-limits")
        await _rejected(a, "client-" + "n" * 30, "private-limits")
        await b.expect_none("client-" + "n" * 30)
        await asyncio.sleep(1.05)  # fresh rate-limit window
        for i in range(5):
            await a.send("client-burst", {"i": i}, "private-limits")
        errors = []
        for _ in range(2):
            errors.append(await a.expect("pusher:error"))
        assert all(e["data"]["code"] == 4301 for e in errors), errors
        got = [await b.expect("client-burst", "private-limits") for _ in range(3)]
        assert [g["data"]["i"] for g in got] == [0, 1, 2]
        await b.expect_none("client-burst", within=0.3)
        await a.assert_open()
    finally:
        await close_all(a, b)


async def test_terminate_user_connections(srv: RunningServer) -> None:
    t1, t2, other = await connect(srv), await connect(srv), await connect(srv)
    try:
        await t1.signin("to-terminate")
        await t2.signin("to-terminate")
        await other.signin("bystander")
        result = await asyncio.to_thread(sdk(srv, MAIN).terminate_user_connections,
                                         "to-terminate")
        assert result == {}
        codes = await asyncio.gather(t1.expect_close(), t2.expect_close())
        assert codes == [4009, 4009]
        await other.assert_open()
    finally:
        await close_all(t1, t2, other)
