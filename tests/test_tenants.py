"""Tenant isolation: two apps on one server using the same channel and user names must never
see each other's events, members, channels or credentials."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pusher
import pytest
from interop_server import RunningServer, ServerFactory
from pusher_ws import PusherWs, api, channel_auth, close_all, data_of, publish, user_auth


def make_app(app_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": app_id, "key": f"key-{app_id}", "secret": f"secret-{app_id}",
            "enabled": True, "enable_client_messages": True, **fields}


A = make_app("1001")
B = make_app("1002")
OFF = make_app("1003", enabled=False)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with ServerFactory(Path(tmp_path_factory.mktemp("tenants"))) as factory:
        yield factory(apps=[A, B, OFF])


def sdk(server: RunningServer, app: dict[str, Any]) -> pusher.Pusher:
    return pusher.Pusher(app_id=app["id"], key=app["key"], secret=app["secret"],
                         host=server.host, port=server.port, ssl=False, timeout=5)


async def connect(server: RunningServer, app: dict[str, Any]) -> PusherWs:
    return await PusherWs.connect(server, app["key"], app["secret"])


async def test_publish_reaches_only_own_app(srv: RunningServer) -> None:
    a, b = await connect(srv, A), await connect(srv, B)
    try:
        for c in (a, b):
            await c.subscribe("shared")
            await c.subscribe("private-shared")
        await asyncio.to_thread(sdk(srv, A).trigger, ["shared", "private-shared"], "from-a", "x")
        assert (await a.expect("from-a", "shared"))["data"] == "x"
        assert (await a.expect("from-a", "private-shared"))["data"] == "x"
        await publish(srv, B, "shared", "from-b", "y")
        assert (await b.expect("from-b", "shared"))["data"] == "y"
        await b.expect_none("from-a", within=0.3)
        await a.expect_none("from-b", within=0.1)
        # batch too
        await asyncio.to_thread(sdk(srv, B).trigger_batch,
                                [{"channel": "shared", "name": "batch-b", "data": "z"}])
        await b.expect("batch-b", "shared")
        await a.expect_none("batch-b", within=0.3)
    finally:
        await close_all(a, b)


async def test_client_events_stay_in_app(srv: RunningServer) -> None:
    a1, a2, b = await connect(srv, A), await connect(srv, A), await connect(srv, B)
    try:
        for c in (a1, a2, b):
            await c.subscribe("private-chat")
        await a1.send("client-hello", {"from": "a1"}, "private-chat")
        await a2.expect("client-hello", "private-chat")
        await b.expect_none("client-hello", within=0.3)
    finally:
        await close_all(a1, a2, b)


async def test_presence_and_channel_lists_do_not_cross(srv: RunningServer) -> None:
    channel = "presence-lobby"
    a, b = await connect(srv, A), await connect(srv, B)
    try:
        pa = await a.subscribe_presence(channel, "alice", {"app": "A"})
        pb = await b.subscribe_presence(channel, "bob", {"app": "B"})
        assert pa == {"ids": ["alice"], "hash": {"alice": {"app": "A"}}, "count": 1}
        assert pb == {"ids": ["bob"], "hash": {"bob": {"app": "B"}}, "count": 1}
        await a.expect_none("pusher_internal:member_added", within=0.3)
        # the same user id in both apps is two different users
        async with await connect(srv, B) as b_alice:
            await b_alice.subscribe_presence(channel, "alice", {"app": "B"})
            added = await b.expect("pusher_internal:member_added", channel)
            assert data_of(added) == {"user_id": "alice", "user_info": {"app": "B"}}
            await a.expect_none("pusher_internal:member_added", within=0.2)
            users_b = await asyncio.to_thread(sdk(srv, B).users_info, channel)
            assert sorted(u["id"] for u in users_b["users"]) == ["alice", "bob"]
        await b.expect("pusher_internal:member_removed", channel)
        await a.expect_none("pusher_internal:member_removed", within=0.2)

        users_a = await asyncio.to_thread(sdk(srv, A).users_info, channel)
        assert users_a == {"users": [{"id": "alice"}]}

        await b.subscribe("only-in-b")
        await b.assert_open()
        channels_a = (await asyncio.to_thread(sdk(srv, A).channels_info))["channels"]
        channels_b = (await asyncio.to_thread(sdk(srv, B).channels_info))["channels"]
        assert "only-in-b" in channels_b
        assert "only-in-b" not in channels_a
        info = await asyncio.to_thread(sdk(srv, A).channel_info, "only-in-b")
        assert info == {"occupied": False}
        count = await asyncio.to_thread(
            sdk(srv, A).channel_info, channel, ["user_count", "subscription_count"])
        assert count == {"occupied": True, "user_count": 1, "subscription_count": 1}
    finally:
        await close_all(a, b)


async def test_app_credentials_do_not_sign_for_other_app(srv: RunningServer) -> None:
    event = {"name": "e", "channel": "shared", "data": "x"}
    # A's key and secret on B's path
    resp = await api(srv, A, "POST", "/apps/1002/events", event)
    assert resp.status_code == 401, resp.text
    assert resp.json()["status"] == 401
    # B's key with A's secret, and A's key with B's secret
    resp = await api(srv, B, "POST", "/apps/1002/events", event, secret=A["secret"])
    assert resp.status_code == 401, resp.text
    resp = await api(srv, B, "GET", "/apps/1002/channels", key=A["key"], secret=B["secret"])
    assert resp.status_code == 401, resp.text
    # the SDK configured with B's id but A's credentials
    mixed = pusher.Pusher(app_id=B["id"], key=A["key"], secret=A["secret"],
                          host=srv.host, port=srv.port, ssl=False, timeout=5)
    with pytest.raises(pusher.errors.PusherBadAuth):
        await asyncio.to_thread(mixed.channels_info)
    # terminate_connections on B's user with A's key (route without an app id) touches A only
    async with await connect(srv, B) as b:
        await b.signin("shared-user")
        await asyncio.to_thread(sdk(srv, A).terminate_user_connections, "shared-user")
        await b.assert_open()


async def test_socket_cannot_use_other_apps_signature(srv: RunningServer) -> None:
    async with await connect(srv, B) as b:
        for channel, data in (("private-vault", None),
                              ("presence-vault", json.dumps({"user_id": "x"}))):
            auth = channel_auth(A["key"], A["secret"], b.socket_id, channel, data)
            await b.subscribe(channel, auth=auth, channel_data=data, wait=False)
            err = await b.expect("pusher:subscription_error", channel)
            assert data_of(err)["type"] == "AuthError", err
            # B's key with A's secret is no better
            auth = channel_auth(B["key"], A["secret"], b.socket_id, channel, data)
            await b.subscribe(channel, auth=auth, channel_data=data, wait=False)
            err = await b.expect("pusher:subscription_error", channel)
            assert data_of(err)["type"] == "AuthError", err
        user_data = json.dumps({"id": "intruder"})
        await b.send("pusher:signin", {
            "user_data": user_data,
            "auth": user_auth(A["key"], A["secret"], b.socket_id, user_data),
        })
        err = await b.expect("pusher:error")
        assert err["data"]["code"] == 4009
        await b.assert_open()


async def test_disabled_app_refused(srv: RunningServer) -> None:
    client = await PusherWs.open(srv, OFF["key"])
    assert await client.expect_close() == 4003
    errors = [f for f in client.pending if f["event"] == "pusher:error"]
    assert errors and errors[0]["data"]["code"] == 4003
    resp = await api(srv, OFF, "POST", "/apps/1003/events",
                     {"name": "e", "channel": "shared", "data": "x"})
    assert resp.status_code == 403, resp.text
    assert resp.json()["status"] == 403
    with pytest.raises(pusher.errors.PusherForbidden):
        await asyncio.to_thread(sdk(srv, OFF).channels_info)
    # the enabled apps are unaffected
    async with await connect(srv, A) as a:
        await a.assert_open()
