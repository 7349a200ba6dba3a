"""Rate limits end to end, against real sockudo-py processes: per-app backend events (one
point per channel) and read requests, the per-IP API limit (``X-Forwarded-For`` with
``trust_hops``), the per-IP WebSocket connect limit, and the Redis limiter shared by two
nodes. The Redis tests use the local Redis (127.0.0.1:6379) under a unique prefix; a missing
Redis fails them (the limiter fails open, so the limit is not reached)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
from interop_server import RunningServer, ServerFactory
from pusher_ws import QUERY, PusherWs, api, signed_params
from websockets.asyncio.client import connect

REDIS_URL = "redis://127.0.0.1:6379/0"
RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


def make_app(app_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": app_id, "key": f"key-{app_id}", "secret": f"secret-{app_id}",
            "enabled": True, **fields}


def limiter(**section: Any) -> dict[str, Any]:
    return {"rate_limiter": {"enabled": True, **section}}


async def signed(server: RunningServer, app: dict[str, Any], method: str, path: str,
                 body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    """A signed request with extra ``headers`` (``X-Forwarded-For``)."""
    data = b"" if body is None else json.dumps(body).encode()
    query = signed_params(app["key"], app["secret"], method, path, data)
    async with httpx.AsyncClient(base_url=server.http_url, trust_env=False, timeout=5) as c:
        return await c.request(method, path, params=query, content=data or None,
                               headers={"Content-Type": "application/json", **(headers or {})})


def assert_limited(resp: httpx.Response, limit: int, remaining: int) -> None:
    assert resp.status_code == 429, (resp.status_code, resp.text)
    body = resp.json()
    assert set(body) == {"error", "code", "status"}, body
    assert body["code"] == "rate_limited" and body["status"] == 429 and body["error"]
    assert 1 <= int(resp.headers["retry-after"]) <= 60
    assert_headers(resp, limit, remaining)


def assert_headers(resp: httpx.Response, limit: int, remaining: int) -> None:
    assert int(resp.headers["x-ratelimit-limit"]) == limit, dict(resp.headers)
    assert int(resp.headers["x-ratelimit-remaining"]) == remaining, dict(resp.headers)
    assert int(resp.headers["x-ratelimit-reset"]) >= 1


def events(channels: list[str]) -> dict[str, Any]:
    return {"name": "e", "data": "{}", "channels": channels}


async def test_no_limits_and_no_headers_when_disabled(sockudo_server: RunningServer) -> None:
    app = sockudo_server.app
    resp = await api(sockudo_server, app, "GET", f"/apps/{app['id']}/channels")
    assert resp.status_code == 200
    assert not any(h in resp.headers for h in RATE_HEADERS)


async def test_backend_events_count_one_point_per_channel(
    sockudo_server_factory: ServerFactory,
) -> None:
    app = make_app("501", max_backend_events_per_second=5)
    srv = sockudo_server_factory(limiter(), apps=[app])
    path = f"/apps/{app['id']}/events"
    ok = await api(srv, app, "POST", path, events(["a", "b", "c"]))
    assert ok.status_code == 200, ok.text
    assert_headers(ok, 5, 2)  # the tightest limit: the app's, not the IP's 100/60 s
    refused = await api(srv, app, "POST", path, events(["a", "b", "c"]))
    assert_limited(refused, 5, 2)
    assert int(refused.headers["retry-after"]) == 1
    batch = {"batch": [{"name": "e", "data": "", "channel": c} for c in ("a", "b")]}
    ok = await api(srv, app, "POST", f"/apps/{app['id']}/batch_events", batch)
    assert ok.status_code == 200, ok.text
    assert_headers(ok, 5, 0)
    assert_limited(await api(srv, app, "POST", path, events(["a"])), 5, 0)
    # reads do not count against publishing
    assert (await api(srv, app, "GET", f"/apps/{app['id']}/channels")).status_code == 200
    await asyncio.sleep(1.05)  # the 1 s window ended
    again = await api(srv, app, "POST", path, events(["a", "b", "c", "d", "e"]))
    assert again.status_code == 200, again.text
    assert_headers(again, 5, 0)


async def test_app_limits_apply_without_the_per_ip_limiter(
    sockudo_server_factory: ServerFactory,
) -> None:
    """``rate_limiter.enabled`` (off by default) switches the per-IP limits only: an app's own
    limits hold whenever it sets them, as in soketi."""
    app = make_app("504", max_backend_events_per_second=2)
    srv = sockudo_server_factory(apps=[app])
    path = f"/apps/{app['id']}/events"
    assert (await api(srv, app, "POST", path, events(["a", "b"]))).status_code == 200
    assert_limited(await api(srv, app, "POST", path, events(["a"])), 2, 0)


async def test_read_requests_per_second(sockudo_server_factory: ServerFactory) -> None:
    app = make_app("502", max_read_requests_per_second=3)
    other = make_app("503")  # no read limit
    srv = sockudo_server_factory(limiter(), apps=[app, other])
    base = f"/apps/{app['id']}"
    for path, remaining in ((f"{base}/channels", 2), (f"{base}/channels/x", 1),
                            (f"{base}/channels/presence-x/users", 0)):
        resp = await api(srv, app, "GET", path)
        assert resp.status_code == 200, (path, resp.text)
        assert_headers(resp, 3, remaining)
    assert_limited(await api(srv, app, "GET", f"{base}/channels"), 3, 0)
    published = await api(srv, app, "POST", f"{base}/events", events(["a"]))
    assert published.status_code == 200  # publishing is not a read
    resp = await api(srv, other, "GET", f"/apps/{other['id']}/channels")
    assert resp.status_code == 200
    assert_headers(resp, 100, 100 - 6)  # only the per-IP limit applies to the other app


async def test_api_limit_per_ip_with_forwarded_for(sockudo_server_factory: ServerFactory) -> None:
    app = make_app("504")
    path = f"/apps/{app['id']}/channels"
    proxied = sockudo_server_factory(
        limiter(api_rate_limit={"max_requests": 3, "window_seconds": 60, "trust_hops": 1}),
        apps=[app],
    )
    client_a = {"X-Forwarded-For": "6.6.6.6, 1.1.1.1"}  # proxy saw 1.1.1.1; 6.6.6.6 is forged
    for remaining in (2, 1, 0):
        resp = await signed(proxied, app, "GET", path, headers=client_a)
        assert resp.status_code == 200
        assert_headers(resp, 3, remaining)
    assert_limited(await signed(proxied, app, "GET", path, headers=client_a), 3, 0)
    # the forged part does not help; another client behind the proxy has its own budget
    forged = {"X-Forwarded-For": "7.7.7.7, 1.1.1.1"}
    assert (await signed(proxied, app, "GET", path, headers=forged)).status_code == 429
    resp = await signed(proxied, app, "GET", path, headers={"X-Forwarded-For": "2.2.2.2"})
    assert resp.status_code == 200
    assert_headers(resp, 3, 2)
    # unsigned / badly signed requests count too (they cost the server work)
    bad = await api(proxied, app, "GET", path, secret="wrong")
    assert bad.status_code == 401 and int(bad.headers["x-ratelimit-remaining"]) == 2

    direct = sockudo_server_factory(
        limiter(api_rate_limit={"max_requests": 2, "window_seconds": 60, "trust_hops": 0}),
        apps=[app],
    )
    # trust_hops 0: the header is ignored, every request is 127.0.0.1's
    for ip in ("1.1.1.1", "2.2.2.2"):
        resp = await signed(direct, app, "GET", path, headers={"X-Forwarded-For": ip})
        assert resp.status_code == 200
    resp = await signed(direct, app, "GET", path, headers={"X-Forwarded-For": "3.3.3.3"})
    assert_limited(resp, 2, 0)
    assert "127.0.0.1" in resp.json()["error"]
    assert (await api(direct, app, "GET", "/up")).status_code == 200  # health is not limited


async def open_ws(server: RunningServer, app: dict[str, Any],
                  forwarded_for: str | None = None) -> PusherWs:
    ws = await connect(
        f"{server.ws_url}/app/{app['key']}{QUERY}", compression=None, proxy=None,
        open_timeout=3, ping_interval=None, close_timeout=1,
        additional_headers={"X-Forwarded-For": forwarded_for} if forwarded_for else None,
    )
    return PusherWs(ws, app["key"], app["secret"])


async def test_websocket_connect_limit_per_ip(sockudo_server_factory: ServerFactory) -> None:
    app = make_app("505")
    srv = sockudo_server_factory(
        limiter(websocket_rate_limit={"max_requests": 2, "window_seconds": 60, "trust_hops": 1}),
        apps=[app],
    )
    clients = [await open_ws(srv, app, "1.1.1.1") for _ in range(2)]
    for client in clients:
        await client.expect("pusher:connection_established")
    refused = await open_ws(srv, app, "1.1.1.1")
    error = await refused.expect("pusher:error")
    assert error["data"]["code"] == 4100
    assert "Too many connections" in error["data"]["message"]
    assert await refused.expect_close() == 4100
    # closing sockets does not give connects back (it limits connects, not connections)
    await clients[0].close()
    again = await open_ws(srv, app, "1.1.1.1")
    assert await again.expect_close() == 4100
    other = await open_ws(srv, app, "2.2.2.2")
    await other.expect("pusher:connection_established")
    # the HTTP API has its own budget
    assert (await api(srv, app, "GET", f"/apps/{app['id']}/channels")).status_code == 200
    for client in (*clients, refused, again, other):
        await client.close()


async def test_redis_limit_holds_across_two_nodes(sockudo_server_factory: ServerFactory) -> None:
    app = make_app("506", max_backend_events_per_second=None)
    shared = limiter(
        driver="redis",
        api_rate_limit={"max_requests": 4, "window_seconds": 30},
        redis={"prefix": f"test-rl-{uuid.uuid4().hex[:10]}:"},
    ) | {"database": {"redis": {"url": REDIS_URL}}}
    one = sockudo_server_factory(shared, apps=[app])
    two = sockudo_server_factory(shared, apps=[app])
    path = f"/apps/{app['id']}/channels"
    remaining = []
    for node in (one, two, one, two):
        resp = await api(node, app, "GET", path)
        assert resp.status_code == 200, resp.text
        remaining.append(int(resp.headers["x-ratelimit-remaining"]))
    assert remaining == [3, 2, 1, 0]
    assert_limited(await api(one, app, "GET", path), 4, 0)
    assert_limited(await api(two, app, "GET", path), 4, 0)


async def test_redis_app_limit_holds_across_two_nodes(
    sockudo_server_factory: ServerFactory,
) -> None:
    app = make_app("507", max_backend_events_per_second=4)
    shared = limiter(driver="redis", redis={"prefix": f"test-rl-{uuid.uuid4().hex[:10]}:"}) | {
        "database": {"redis": {"url": REDIS_URL}}
    }
    one = sockudo_server_factory(shared, apps=[app])
    two = sockudo_server_factory(shared, apps=[app])
    path = f"/apps/{app['id']}/events"
    # within one second: 3 points on one node leave 1 on the other
    first = await api(one, app, "POST", path, events(["a", "b", "c"]))
    assert first.status_code == 200
    assert_limited(await api(two, app, "POST", path, events(["a", "b"])), 4, 1)
    ok = await api(two, app, "POST", path, events(["a"]))
    assert ok.status_code == 200
    assert_headers(ok, 4, 0)
