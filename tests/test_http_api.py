"""End-to-end HTTP API tests: the PyPI ``pusher`` SDK and raw signed requests (``httpx``)
against a real sockudo-py process, with WebSocket subscribers observing the effects."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pusher
import pytest
from interop_server import RunningServer, ServerFactory
from pusher.errors import PusherBadRequest
from pusher.http import POST, Request
from pusher_ws import PusherWs, api, close_all, data_of, signed_params


def make_app(app_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": app_id, "key": f"key-{app_id}", "secret": f"secret-{app_id}",
            "enabled": True, **fields}


MAIN = make_app("1001", enable_client_messages=True, max_event_payload_in_kb=8)
DISABLED = make_app("1007", enabled=False)
REQUEST_LIMIT_MB = 0.25


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with ServerFactory(Path(tmp_path_factory.mktemp("http"))) as factory:
        yield factory({"http_api": {"request_limit_in_mb": REQUEST_LIMIT_MB}},
                      apps=[MAIN, DISABLED])


def sdk(server: RunningServer, app: dict[str, Any] = MAIN) -> pusher.Pusher:
    return pusher.Pusher(app_id=app["id"], key=app["key"], secret=app["secret"],
                         host=server.host, port=server.port, ssl=False, timeout=5)


async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a (blocking) SDK call off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def connect(server: RunningServer, app: dict[str, Any] = MAIN) -> PusherWs:
    return await PusherWs.connect(server, app["key"], app["secret"])


def assert_error(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert set(body) == {"error", "code", "status"}, body
    assert body["status"] == status
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["code"], str) and body["code"]
    return body  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- SDK


async def test_trigger_single_channel_and_list(srv: RunningServer) -> None:
    a, b = await connect(srv), await connect(srv)
    try:
        await a.subscribe("t-one")
        await b.subscribe("t-two")
        client = sdk(srv)
        assert await call(client.trigger, "t-one", "ev", {"n": 1}) == {}
        got = await a.expect("ev", "t-one")
        # the SDK JSON-encodes data; the server delivers that text as is
        assert got == {"event": "ev", "channel": "t-one", "data": json.dumps({"n": 1})}
        assert await call(client.trigger, ["t-one", "t-two"], "both", "plain text") == {}
        assert (await a.expect("both", "t-one"))["data"] == "plain text"
        assert (await b.expect("both", "t-two"))["data"] == "plain text"
        await a.expect_none("both", within=0.2)  # exactly once
    finally:
        await close_all(a, b)


async def test_trigger_excludes_socket_id(srv: RunningServer) -> None:
    a, b = await connect(srv), await connect(srv)
    try:
        for c in (a, b):
            await c.subscribe("t-excl")
        await call(sdk(srv).trigger, "t-excl", "ev", "x", socket_id=a.socket_id)
        assert (await b.expect("ev", "t-excl"))["data"] == "x"
        await a.expect_none("ev", within=0.3)
    finally:
        await close_all(a, b)


async def test_trigger_with_info(srv: RunningServer) -> None:
    a, b = await connect(srv), await connect(srv)
    try:
        await a.subscribe("t-info")
        await b.subscribe("t-info")
        await a.subscribe_presence("presence-t-info", "u1")
        await b.subscribe_presence("presence-t-info", "u1")  # same user twice
        client = sdk(srv)._pusher_client
        base = client.trigger.make_request(["t-info", "presence-t-info"], "ev", "d")
        request = Request(client, POST, base.path,
                          {**base.params, "info": "subscription_count,user_count"})
        result = await call(client.http.send_request, request)
        assert result == {"channels": {
            "t-info": {"subscription_count": 2},
            "presence-t-info": {"subscription_count": 2, "user_count": 1},
        }}
    finally:
        await close_all(a, b)


async def test_trigger_batch(srv: RunningServer) -> None:
    a = await connect(srv)
    try:
        await a.subscribe("b-one")
        await a.subscribe_presence("presence-b-two", "u9")
        client = sdk(srv)
        batch = [
            {"channel": "b-one", "name": "e1", "data": "one"},
            {"channel": "presence-b-two", "name": "e2", "data": {"v": 2}},
        ]
        assert await call(client.trigger_batch, [dict(e) for e in batch]) == {}
        assert (await a.expect("e1", "b-one"))["data"] == "one"
        assert data_of(await a.expect("e2", "presence-b-two")) == {"v": 2}

        with_info = [
            {**batch[0], "info": "subscription_count"},
            {**batch[1], "info": "subscription_count,user_count"},
        ]
        result = await call(client.trigger_batch, with_info)
        assert result == {"batch": [
            {"subscription_count": 1},
            {"subscription_count": 1, "user_count": 1},
        ]}
    finally:
        await a.close()


async def test_channels_info(srv: RunningServer) -> None:
    a, b = await connect(srv), await connect(srv)
    try:
        await a.subscribe("ci-public")
        await b.subscribe("ci-public")
        await a.subscribe("private-ci")
        await a.subscribe_presence("presence-ci", "u1")
        await b.subscribe_presence("presence-ci", "u2")
        await a.subscribe("ci-empty")
        await a.unsubscribe("ci-empty")
        await a.assert_open()
        client = sdk(srv)

        everything = (await call(client.channels_info))["channels"]
        assert {"ci-public", "private-ci", "presence-ci"} <= set(everything)
        assert "ci-empty" not in everything  # only occupied channels
        assert everything["ci-public"] == {}

        presence = await call(client.channels_info, "presence-", ["user_count"])
        assert presence["channels"] == {"presence-ci": {"user_count": 2}}

        counted = await call(client.channels_info, "ci-", ["subscription_count"])
        assert counted["channels"] == {"ci-public": {"subscription_count": 2}}

        with pytest.raises(PusherBadRequest):
            await call(client.channels_info, None, ["user_count"])
        with pytest.raises(PusherBadRequest):
            await call(client.channels_info, "private-", ["user_count"])
    finally:
        await close_all(a, b)


async def test_channel_info(srv: RunningServer) -> None:
    a, b = await connect(srv), await connect(srv)
    try:
        await a.subscribe("chi-public")
        await b.subscribe("chi-public")
        await a.subscribe_presence("presence-chi", "u1")
        client = sdk(srv)
        assert await call(client.channel_info, "chi-public", ["subscription_count"]) == {
            "occupied": True, "subscription_count": 2}
        assert await call(client.channel_info, "chi-nobody") == {"occupied": False}
        assert await call(
            client.channel_info, "presence-chi", ["user_count", "subscription_count"]
        ) == {"occupied": True, "user_count": 1, "subscription_count": 1}
        with pytest.raises(PusherBadRequest):
            await call(client.channel_info, "chi-public", ["user_count"])
    finally:
        await close_all(a, b)


async def test_users_info(srv: RunningServer) -> None:
    a, b, c = await connect(srv), await connect(srv), await connect(srv)
    try:
        await a.subscribe_presence("presence-users", "u1", {"n": 1})
        await b.subscribe_presence("presence-users", "u2")
        await c.subscribe_presence("presence-users", "u1", {"n": 1})
        users = await call(sdk(srv).users_info, "presence-users")
        assert sorted(users["users"], key=lambda u: u["id"]) == [{"id": "u1"}, {"id": "u2"}]
        assert await call(sdk(srv).users_info, "presence-nobody") == {"users": []}
        with pytest.raises(PusherBadRequest):
            await call(sdk(srv).users_info, "private-users")
    finally:
        await close_all(a, b, c)


# --------------------------------------------------------------------------- raw signed requests

EVENT = {"name": "e", "channel": "raw-ch", "data": "x"}


async def test_raw_signed_request_accepted(srv: RunningServer) -> None:
    resp = await api(srv, MAIN, "POST", "/apps/1001/events", EVENT)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {}


async def test_wrong_secret_401(srv: RunningServer) -> None:
    resp = await api(srv, MAIN, "POST", "/apps/1001/events", EVENT, secret="not-the-secret")
    assert_error(resp, 401)
    resp = await api(srv, MAIN, "GET", "/apps/1001/channels", secret="not-the-secret")
    assert_error(resp, 401)


async def test_unsigned_and_unknown_key_401(srv: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=srv.http_url, trust_env=False) as client:
        assert_error(await client.get("/apps/1001/channels"), 401)
    resp = await api(srv, MAIN, "GET", "/apps/1001/channels", key="some-other-key")
    assert_error(resp, 401)


async def test_stale_and_future_timestamp_401(srv: RunningServer) -> None:
    now = int(time.time())
    for ts in (now - 700, now + 700):
        resp = await api(srv, MAIN, "POST", "/apps/1001/events", EVENT, timestamp=ts)
        assert_error(resp, 401)
    # well inside the window is fine
    resp = await api(srv, MAIN, "POST", "/apps/1001/events", EVENT, timestamp=now - 300)
    assert resp.status_code == 200, resp.text


async def test_replayed_old_request_401(srv: RunningServer) -> None:
    """A request captured 11 minutes ago (valid signature, old timestamp) is refused, and its
    signature cannot be reused with a fresh timestamp."""
    body = json.dumps(EVENT).encode()
    path = "/apps/1001/events"
    captured = signed_params(MAIN["key"], MAIN["secret"], "POST", path, body,
                             timestamp=int(time.time()) - 660)
    tampered = {**captured, "auth_timestamp": str(int(time.time()))}
    async with httpx.AsyncClient(base_url=srv.http_url, trust_env=False) as client:
        for params in (captured, tampered):
            resp = await client.post(path, params=params, content=body,
                                     headers={"Content-Type": "application/json"})
            assert_error(resp, 401)


async def test_wrong_body_md5_401(srv: RunningServer) -> None:
    md5_of_other = hashlib.md5(b'{"other": 1}').hexdigest()
    resp = await api(srv, MAIN, "POST", "/apps/1001/events", EVENT, body_md5=md5_of_other)
    assert_error(resp, 401)
    # signed body_md5 that matches, but the body was changed in transit
    path = "/apps/1001/events"
    body = json.dumps(EVENT).encode()
    params = signed_params(MAIN["key"], MAIN["secret"], "POST", path, body)
    async with httpx.AsyncClient(base_url=srv.http_url, trust_env=False) as client:
        resp = await client.post(path, params=params,
                                 content=body.replace(b'"x"', b'"y"'),
                                 headers={"Content-Type": "application/json"})
    assert_error(resp, 401)


async def test_unknown_app_404(srv: RunningServer) -> None:
    ghost = make_app("9999")
    resp = await api(srv, ghost, "POST", "/apps/9999/events", EVENT)
    assert_error(resp, 404)
    resp = await api(srv, ghost, "GET", "/apps/9999/channels")
    assert_error(resp, 404)


async def test_disabled_app_403(srv: RunningServer) -> None:
    resp = await api(srv, DISABLED, "POST", "/apps/1007/events", EVENT)
    assert_error(resp, 403)
    resp = await api(srv, DISABLED, "GET", "/apps/1007/channels")
    assert_error(resp, 403)


async def test_event_payload_over_limit_413(srv: RunningServer) -> None:
    ok = {**EVENT, "data": "x" * (8 * 1024 - 10)}
    assert (await api(srv, MAIN, "POST", "/apps/1001/events", ok)).status_code == 200
    too_big = {**EVENT, "data": "x" * (8 * 1024 + 10)}
    assert_error(await api(srv, MAIN, "POST", "/apps/1001/events", too_big), 413)
    batch = {"batch": [EVENT, too_big]}
    assert_error(await api(srv, MAIN, "POST", "/apps/1001/batch_events", batch), 413)


async def test_body_over_request_limit_413(srv: RunningServer) -> None:
    padded = {**EVENT, "padding": "p" * int(REQUEST_LIMIT_MB * 1024 * 1024 + 1000)}
    assert_error(await api(srv, MAIN, "POST", "/apps/1001/events", padded), 413)
    # the server still serves
    assert (await api(srv, MAIN, "POST", "/apps/1001/events", EVENT)).status_code == 200


async def test_too_many_channels_400(srv: RunningServer) -> None:
    body = {"name": "e", "data": "x", "channels": [f"c{i}" for i in range(101)]}
    assert_error(await api(srv, MAIN, "POST", "/apps/1001/events", body), 400)
    body["channels"] = body["channels"][:100]
    assert (await api(srv, MAIN, "POST", "/apps/1001/events", body)).status_code == 200


async def test_batch_too_big_400(srv: RunningServer) -> None:
    body = {"batch": [dict(EVENT) for _ in range(11)]}
    assert_error(await api(srv, MAIN, "POST", "/apps/1001/batch_events", body), 400)
    body = {"batch": [dict(EVENT) for _ in range(10)]}
    assert (await api(srv, MAIN, "POST", "/apps/1001/batch_events", body)).status_code == 200


async def test_bad_event_bodies_400(srv: RunningServer) -> None:
    bad_bodies: list[Any] = [
        {**EVENT, "channel": "bad channel!"},
        {**EVENT, "channel": "c" * 201},
        {"name": "e", "data": "x", "channels": ["ok", "no spaces"]},
        {"name": "e", "data": "x"},                      # no channel
        {"channel": "c", "data": "x"},                   # no name
        {**EVENT, "name": "n" * 201},                    # name too long
        {"name": "e", "channel": "c"},                   # no data
        {**EVENT, "socket_id": "not-a-socket-id"},
        [EVENT],
    ]
    for body in bad_bodies:
        assert_error(await api(srv, MAIN, "POST", "/apps/1001/events", body), 400)
    resp = await api(srv, MAIN, "POST", "/apps/1001/events", raw_body=b"{not json")
    assert_error(resp, 400)
    long_ok = {**EVENT, "channel": "c" * 200}
    assert (await api(srv, MAIN, "POST", "/apps/1001/events", long_ok)).status_code == 200


async def test_query_errors_400(srv: RunningServer) -> None:
    resp = await api(srv, MAIN, "GET", "/apps/1001/channels", params={"info": "user_count"})
    assert_error(resp, 400)
    resp = await api(srv, MAIN, "GET", "/apps/1001/channels/public-x",
                     params={"info": "user_count"})
    assert_error(resp, 400)
    resp = await api(srv, MAIN, "GET", "/apps/1001/channels/private-x/users")
    assert_error(resp, 400)
    resp = await api(srv, MAIN, "GET", "/apps/1001/channels/" + "c" * 201)
    assert_error(resp, 400)
    resp = await api(srv, MAIN, "GET", "/apps/1001/channels/bad%20name")
    assert_error(resp, 400)


async def test_terminate_connections_raw_route(srv: RunningServer) -> None:
    a, b = await connect(srv), await connect(srv)
    try:
        await a.signin("raw-term")
        await b.signin("raw-keep")
        resp = await api(srv, MAIN, "POST", "/apps/1001/users/raw-term/terminate_connections",
                         {})
        assert resp.status_code == 200, resp.text
        assert resp.json() == {}
        assert await a.expect_close() == 4009
        await b.assert_open()
    finally:
        await close_all(a, b)


async def test_unknown_route_404_json(srv: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=srv.http_url, trust_env=False) as client:
        assert_error(await client.get("/no/such/route"), 404)
        assert_error(await client.post("/apps/1001/nothing-here", content=b"{}"), 404)
        assert_error(await client.delete("/apps/1001/events"), 404)


async def test_health_and_usage(srv: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=srv.http_url, trust_env=False) as client:
        up = await client.get("/up")
        assert (up.status_code, up.text) == (200, "OK")
        up = await client.get("/up/1001")
        assert (up.status_code, up.text) == (200, "OK")
        missing = await client.get("/up/9999")
        assert (missing.status_code, missing.text) == (404, "NOT_FOUND")
        disabled = await client.get("/up/1007")
        assert disabled.status_code == 503
        usage = await client.get("/usage")
        assert usage.status_code == 200
        memory = usage.json()["memory"]
        for key in ("total", "free", "used", "percent", "rss"):
            assert isinstance(memory[key], int | float), (key, memory)
