"""Origins end to end, on a real server process: CORS of the HTTP API (``cors.*``) and the
apps' ``allowed_origins`` for WebSocket upgrades, with one matching rule for both
(``sockudo_py/ws/origins.py``): exact origins, ``https://*.example.org`` (its subdomains, at
any depth, not the bare domain nor a look-alike), a host without a scheme (``example.net``:
any scheme), ``*`` (anyone; CORS credentials are then off).

* Preflight ``OPTIONS`` from an allowed origin: 200 with the origin echoed, the methods,
  headers and credentials; from a disallowed one: 400 without ``Access-Control-Allow-Origin``.
* Real requests: the allowed origin is echoed (also on an error answer, so a browser app can
  read it); a disallowed one gets no CORS header (the browser keeps the answer from it).
* WebSocket upgrades: an allowed origin is served; a disallowed or missing one gets
  ``pusher:error`` 4009 "Origin not allowed" and a 4009 close.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from interop_server import DEFAULT_APP, RunningServer, ServerFactory
from pusher_ws import PusherWs, data_of, signed_params

pytestmark = pytest.mark.timeout(60)

PATTERNS = ["https://app.example.com", "https://*.example.org", "example.net"]
ALLOWED = [
    "https://app.example.com",
    "https://a.example.org",
    "https://a.b.example.org",
    "https://example.net",
    "http://example.net",
]
DISALLOWED = [
    "https://evil.example.com",
    "http://app.example.com",
    "https://example.org",
    "https://a.example.org.evil.com",
    "https://evilexample.org",
    "https://a.example.net",
    "null",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    config = {"cors": {"origin": PATTERNS, "credentials": True}}
    app = {**DEFAULT_APP, "allowed_origins": PATTERNS}
    with ServerFactory(tmp_path_factory.mktemp("cors")) as factory:
        yield factory(config, apps=[app])


async def signed(
    server: RunningServer, method: str, path: str, origin: str, body: Any = None, **sign: Any
) -> httpx.Response:
    """A signed HTTP API request sent with ``Origin: origin`` (``sign``: ``secret=``...)."""
    app = server.app
    data = b"" if body is None else json.dumps(body).encode()
    query = signed_params(app["key"], sign.get("secret", app["secret"]), method, path, data)
    headers = {"Origin": origin, **({"Content-Type": "application/json"} if data else {})}
    async with httpx.AsyncClient(base_url=server.http_url, trust_env=False) as http:
        return await http.request(method, path, params=query, content=data or None, headers=headers)


async def preflight(server: RunningServer, origin: str) -> httpx.Response:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    path = f"/apps/{server.app['id']}/events"
    async with httpx.AsyncClient(base_url=server.http_url, trust_env=False) as http:
        return await http.options(path, headers=headers)


@pytest.mark.parametrize("origin", ALLOWED)
async def test_preflight_from_an_allowed_origin(server: RunningServer, origin: str) -> None:
    resp = await preflight(server, origin)
    assert resp.status_code == 200, resp.text
    assert resp.headers["access-control-allow-origin"] == origin
    assert resp.headers["access-control-allow-credentials"] == "true"
    assert "POST" in resp.headers["access-control-allow-methods"]
    assert "content-type" in resp.headers["access-control-allow-headers"].lower()


@pytest.mark.parametrize("origin", DISALLOWED)
async def test_preflight_from_a_disallowed_origin(server: RunningServer, origin: str) -> None:
    resp = await preflight(server, origin)
    assert resp.status_code == 400, resp.text
    assert "access-control-allow-origin" not in resp.headers


async def test_real_requests(server: RunningServer) -> None:
    app, allowed, disallowed = server.app, ALLOWED[1], DISALLOWED[0]
    body = {"name": "cors", "channel": "cors", "data": "x"}
    path = f"/apps/{app['id']}/events"

    async def post(origin: str, **sign: Any) -> httpx.Response:
        return await signed(server, "POST", path, origin, body, **sign)

    ok = await post(allowed)
    assert ok.status_code == 200, ok.text
    assert ok.headers["access-control-allow-origin"] == allowed
    assert ok.headers["access-control-allow-credentials"] == "true"
    assert "origin" in ok.headers["vary"].lower()
    denied = await post(allowed, secret="not-the-secret")  # an error the page can read
    assert denied.status_code == 401
    assert denied.headers["access-control-allow-origin"] == allowed
    foreign = await post(disallowed)  # served (CORS is the browser's rule), but not shared
    assert foreign.status_code == 200
    assert "access-control-allow-origin" not in foreign.headers
    async with httpx.AsyncClient(base_url=server.http_url, trust_env=False) as http:
        up = await http.get("/up", headers={"Origin": allowed})
    assert up.headers["access-control-allow-origin"] == allowed


async def test_any_origin_without_credentials(sockudo_server_factory: ServerFactory) -> None:
    server = sockudo_server_factory({"cors": {"origin": ["*"], "credentials": True}})
    resp = await preflight(server, "https://anywhere.example")
    assert resp.status_code == 200
    assert resp.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in resp.headers
    path = f"/apps/{server.app['id']}/channels"
    real = await signed(server, "GET", path, "https://anywhere.example")
    assert real.status_code == 200
    assert real.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize("origin", [*ALLOWED[:3], "https://APP.example.com/"])
async def test_upgrade_from_an_allowed_origin(server: RunningServer, origin: str) -> None:
    async with await PusherWs.connect(server, server.app["key"], origin=origin) as client:
        await client.assert_open()


@pytest.mark.parametrize("origin", [*DISALLOWED[:5], None])
async def test_upgrade_from_a_disallowed_origin(server: RunningServer, origin: str | None) -> None:
    client = await PusherWs.open(server, server.app["key"], origin=origin)
    try:
        frame = await client.expect("pusher:error", only=True)
        assert data_of(frame) == {"code": 4009, "message": "Origin not allowed"}
        assert await client.expect_close() == 4009
    finally:
        await client.close()
