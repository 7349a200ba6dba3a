"""The console's server side, in process (Starlette's ``TestClient`` runs the node's ASGI app
with its lifespan): the page, the admin-token and app-secret checks, the data endpoints, the
event creator (the HTTP API's code path), the live log's WebSocket, and the tap (nothing
recorded while no console is open; sampling and drops under load).

Tests with Pusher client sockets serve the node for real, still in this process (``served``:
uvicorn as ``server.run`` configures it, on a loopback port): ``/app/{key}`` is the server's
own asyncio protocol, not an ASGI route, so the ``TestClient`` cannot open it."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from pusher_ws import PusherWs, close_all
from starlette.websockets import WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect

from sockudo_py import server as server_module
from sockudo_py.config import Config
from sockudo_py.console.tap import Tap
from sockudo_py.protocol.errors import ErrorCode
from sockudo_py.queue import Job, Retry
from sockudo_py.server import Node
from sockudo_py.webhooks.delivery import WebhookDelivery
from sockudo_py.ws.endpoint import SHUTTING_DOWN

with warnings.catch_warnings():  # it works with httpx (the project's), but would rather have httpx2
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient, WebSocketDenialResponse

ADMIN = "admin-token-for-tests"
APP_A = {"id": "a1", "key": "key-a1", "secret": "secret-a1", "enable_client_messages": True}
APP_B = {"id": "b2", "key": "key-b2", "secret": "secret-b2", "max_event_payload_in_kb": 1}
WAIT = 5.0
"""Seconds any wait on the served node may take (a bound, never a timed assertion)."""


def make_node(console: dict[str, Any] | None = None) -> Node:
    config = Config.model_validate(
        {
            "metrics": {"enabled": False},
            "app_manager": {"array": {"apps": [APP_A, APP_B]}},
            "console": {"enabled": True, "admin_token": ADMIN} if console is None else console,
        }
    )
    return Node.build(config)


@pytest.fixture
def node() -> Node:
    return make_node()


@pytest.fixture
def client(node: Node) -> Iterator[TestClient]:
    with TestClient(node.asgi_app()) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status and body["error"], body
    return str(body["error"])


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT} s: {what}")
        await asyncio.sleep(0.01)


def uvicorn_config(node: Node) -> uvicorn.Config:
    """The uvicorn config ``server.run`` serves ``node`` with (the server's own protocol for
    ``/app/{key}``). Its ``_Server`` is left out: a drain arms a watchdog that ends the
    process, for a real server process only."""
    made: list[uvicorn.Config] = []

    class Capture:
        def __init__(self, config: uvicorn.Config, _: Node) -> None:
            made.append(config)

        def run(self, sockets: list[socket.socket] | None = None) -> None:
            pass

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(server_module, "_Server", Capture)
        server_module.run(node)
    return made[0]


@dataclass
class Served:
    """The node served on a loopback port: Pusher sockets at ``ws_url``, the console's
    HTTP endpoints through ``http``."""

    node: Node
    ws_url: str
    http: httpx.AsyncClient

    async def pusher(self, app: dict[str, Any]) -> PusherWs:
        """A Pusher client socket of ``app`` (``/app/{key}``), connection established."""
        return await PusherWs.connect(self.ws_url, app["key"], app["secret"])


@pytest.fixture
async def served(node: Node) -> AsyncIterator[Served]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    host, port = listener.getsockname()
    server = uvicorn.Server(uvicorn_config(node))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        await until(lambda: server.started or serving.done(), "the server is up")
        if serving.done():
            serving.result()  # start-up failed: its error
            raise AssertionError("the server stopped during start-up")
        async with httpx.AsyncClient(
            base_url=f"http://{host}:{port}", trust_env=False, timeout=WAIT
        ) as http:
            yield Served(node, f"ws://{host}:{port}", http)
    finally:
        # uvicorn's own shutdown knows nothing of Pusher sockets: a failed test's are dropped
        node.endpoint.kill_all(ErrorCode.RECONNECT, SHUTTING_DOWN)
        server.should_exit = True
        await asyncio.wait_for(serving, WAIT)
        listener.close()


async def subscribe(pusher: PusherWs, channel: str, user_id: str | None = None) -> None:
    """Subscribe (signed for private and presence channels) until it succeeded; ``user_id``
    joins a presence channel as that user, with ``{"n": user_id}`` as its info."""
    if user_id is None:
        await pusher.subscribe(channel)
    else:
        await pusher.subscribe_presence(channel, user_id, {"n": user_id})


class LogSocket:
    """The console's live log (``/console/ws``) on the test client."""

    def __init__(self, client: TestClient, token: str, app_id: str) -> None:
        self._context = client.websocket_connect("/console/ws")
        self.ws = self._context.__enter__()
        self.ws.send_json({"type": "auth", "token": token, "app_id": app_id})
        self.first: dict[str, Any] = self.ws.receive_json()

    def entries(self, count: int) -> list[dict[str, Any]]:
        """The next ``count`` entries (blocking; the test's timeout bounds it)."""
        got: list[dict[str, Any]] = []
        while len(got) < count:
            message = self.ws.receive_json()
            assert message["type"] == "entries", message
            got.extend(message["entries"])
        return got

    def close(self) -> None:
        self._context.__exit__(None, None, None)


class LiveLog:
    """The console's live log (``/console/ws``) on the served node."""

    def __init__(self, ws: ClientConnection, first: dict[str, Any]) -> None:
        self.ws = ws
        self.first = first

    @classmethod
    async def open(cls, served: Served, token: str, app_id: str) -> LiveLog:
        ws = await connect(
            f"{served.ws_url}/console/ws", proxy=None, open_timeout=WAIT, ping_interval=None,
            close_timeout=1,
        )  # fmt: skip
        await ws.send(json.dumps({"type": "auth", "token": token, "app_id": app_id}))
        return cls(ws, json.loads(await asyncio.wait_for(ws.recv(), WAIT)))

    async def entries(self, count: int) -> list[dict[str, Any]]:
        """The next ``count`` entries (each message within ``WAIT``)."""
        got: list[dict[str, Any]] = []
        while len(got) < count:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), WAIT))
            assert message["type"] == "entries", message
            got.extend(message["entries"])
        return got

    async def close(self) -> None:
        await asyncio.wait_for(self.ws.close(), WAIT)


# --------------------------------------------------------------------------- disabled


def test_everything_is_404_when_the_console_is_disabled() -> None:
    for console in ({}, {"enabled": False, "admin_token": ADMIN}):
        with TestClient(make_node(console).asgi_app()) as client:
            for path in ("/console", "/console/console.js", "/console/api/apps",
                         "/console/api/apps/a1/stats"):  # fmt: skip
                assert_error(client.get(path, headers=bearer(ADMIN)), 404)
            events = client.post(
                "/console/api/apps/a1/events", headers=bearer(ADMIN),
                json={"channel": "c", "name": "e", "data": "{}"},
            )  # fmt: skip
            assert_error(events, 404)
            with (
                pytest.raises(WebSocketDenialResponse) as denied,
                client.websocket_connect("/console/ws"),
            ):
                pass
            assert denied.value.status_code == 404


# --------------------------------------------------------------------------- the page


def test_the_page_is_served_without_data_and_locked_down(client: TestClient) -> None:
    page = client.get("/console")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert '<script src="/console/console.js"' in page.text
    assert "secret-a1" not in page.text and "app-id" not in page.text
    script = client.get("/console/console.js")
    assert script.status_code == 200 and "history.replaceState" in script.text
    assert client.get("/console/console.css").status_code == 200
    assert_error(client.get("/console/other.js"), 404)


# --------------------------------------------------------------------------- tokens


@pytest.mark.parametrize(
    "headers",
    [{}, bearer("wrong"), bearer(ADMIN + "x"), {"Authorization": ADMIN},
     {"Authorization": f"Basic {ADMIN}"}, bearer("")],
    ids=["none", "wrong", "longer", "no-scheme", "basic", "empty"],
)  # fmt: skip
def test_a_missing_or_wrong_token_is_401_everywhere(
    client: TestClient, headers: dict[str, str]
) -> None:
    for path in ("/console/api/apps", "/console/api/apps/a1/stats",
                 "/console/api/apps/a1/channels",
                 "/console/api/apps/a1/channels/presence-x/members"):  # fmt: skip
        assert_error(client.get(path, headers=headers), 401)
    posted = client.post(
        "/console/api/apps/a1/events", headers=headers,
        json={"channel": "c", "name": "e", "data": "{}"},
    )  # fmt: skip
    assert_error(posted, 401)


def test_the_admin_token_opens_every_app(client: TestClient) -> None:
    body = client.get("/console/api/apps", headers=bearer(ADMIN)).json()
    assert body["apps"] == [
        {"id": "a1", "key": "key-a1", "enabled": True},
        {"id": "b2", "key": "key-b2", "enabled": True},
    ]
    assert body["node"]
    for app_id in ("a1", "b2"):
        stats = client.get(f"/console/api/apps/{app_id}/stats", headers=bearer(ADMIN))
        assert stats.status_code == 200 and stats.json()["app_id"] == app_id
    assert_error(client.get("/console/api/apps/nope/stats", headers=bearer(ADMIN)), 404)


def test_an_app_secret_opens_its_app_alone(client: TestClient) -> None:
    token = bearer("secret-a1")
    assert client.get("/console/api/apps", headers=token).json()["apps"] == [
        {"id": "a1", "key": "key-a1", "enabled": True}
    ]
    assert client.get("/console/api/apps/a1/channels", headers=token).status_code == 200
    # another app, and an app that does not exist, look the same: 401
    assert_error(client.get("/console/api/apps/b2/channels", headers=token), 401)
    assert_error(client.get("/console/api/apps/nope/channels", headers=token), 401)
    posted = client.post(
        "/console/api/apps/b2/events", headers=token,
        json={"channel": "c", "name": "e", "data": "{}"},
    )  # fmt: skip
    assert_error(posted, 401)


def test_without_an_admin_token_only_app_secrets_work() -> None:
    with TestClient(make_node({"enabled": True}).asgi_app()) as client:
        assert_error(client.get("/console/api/apps", headers=bearer(ADMIN)), 401)
        assert_error(client.get("/console/api/apps", headers=bearer("None")), 401)
        apps = client.get("/console/api/apps", headers=bearer("secret-b2")).json()["apps"]
        assert [app["id"] for app in apps] == ["b2"]


# --------------------------------------------------------------------------- data


async def test_stats_channels_and_members_of_an_app(served: Served) -> None:
    http = served.http
    one, two = await served.pusher(APP_A), await served.pusher(APP_A)
    other = await served.pusher(APP_B)
    try:
        await subscribe(one, "news")
        await subscribe(two, "news")
        await subscribe(one, "presence-room", "ada")
        await subscribe(two, "presence-room", "ada")  # the same user twice: one member
        await subscribe(other, "elsewhere")
        token = bearer("secret-a1")
        stats = (await http.get("/console/api/apps/a1/stats", headers=token)).json()
        assert stats["connections"] == 2
        assert (stats["nodes"], stats["missing_nodes"]) == (1, 0)
        assert set(stats["messages_per_second"]) == {"received", "sent"}
        channels = (await http.get("/console/api/apps/a1/channels", headers=token)).json()
        assert channels == {
            "channels": [
                {"name": "news", "subscription_count": 2},
                {"name": "presence-room", "subscription_count": 2, "user_count": 1},
            ]
        }
        members = (
            await http.get("/console/api/apps/a1/channels/presence-room/members", headers=token)
        ).json()
        assert members == {
            "channel": "presence-room",
            "members": [{"id": "ada", "info": {"n": "ada"}}],
        }
        not_presence = await http.get("/console/api/apps/a1/channels/news/members", headers=token)
        assert_error(not_presence, 400)
        bad_name = await http.get("/console/api/apps/a1/channels/bad%20name/members", headers=token)
        assert_error(bad_name, 400)
    finally:
        await close_all(one, two, other)


async def test_the_event_creator_publishes_as_the_http_api_does(served: Served) -> None:
    http = served.http
    subscriber, excluded = await served.pusher(APP_B), await served.pusher(APP_B)
    try:
        await subscribe(subscriber, "orders")
        await subscribe(excluded, "orders")
        body = {"channel": "orders", "name": "shipped", "data": '{"id": 7}',
                "socket_id": excluded.socket_id, "info": "subscription_count"}  # fmt: skip
        sent = await http.post("/console/api/apps/b2/events", headers=bearer(ADMIN), json=body)
        assert sent.status_code == 200, sent.text
        assert sent.json() == {"channels": {"orders": {"subscription_count": 2}}}
        frame = await subscriber.expect("shipped")
        assert (frame["channel"], frame["data"]) == ("orders", '{"id": 7}')
        # the same validation as POST /apps/{id}/events (one code path)
        for bad, status in (
            ({"channel": "orders", "data": "{}"}, 400),  # no name
            ({"name": "e", "data": "{}"}, 400),  # no channel
            ({"channel": "bad name", "name": "e", "data": "{}"}, 400),
            ({"channel": "orders", "name": "e", "data": "x" * 2048}, 413),  # app b2: 1 KB
        ):
            assert_error(await http.post("/console/api/apps/b2/events", headers=bearer(ADMIN),
                                         json=bad), status)  # fmt: skip
        not_json = await http.post(
            "/console/api/apps/b2/events", headers=bearer(ADMIN), content=b"{nope"
        )
        assert_error(not_json, 400)
    finally:
        await close_all(subscriber, excluded)


def test_the_event_creator_refuses_a_disabled_app() -> None:
    config = Config.model_validate(
        {
            "metrics": {"enabled": False},
            "app_manager": {"array": {"apps": [{**APP_A, "enabled": False}]}},
            "console": {"enabled": True, "admin_token": ADMIN},
        }
    )
    with TestClient(Node.build(config).asgi_app()) as client:
        posted = client.post(
            "/console/api/apps/a1/events", headers=bearer(ADMIN),
            json={"channel": "c", "name": "e", "data": "{}"},
        )  # fmt: skip
        assert_error(posted, 403)
        apps = client.get("/console/api/apps", headers=bearer(ADMIN)).json()["apps"]
        assert apps == [{"id": "a1", "key": "key-a1", "enabled": False}]


# --------------------------------------------------------------------------- the live log


async def test_the_live_log_shows_what_happens_to_its_app(served: Served, node: Node) -> None:
    log = await LiveLog.open(served, "secret-a1", "a1")
    try:
        assert log.first["type"] == "ready" and log.first["app_id"] == "a1"
        assert log.first["node"] == node.adapter.node_id
        socket = await served.pusher(APP_A)
        await subscribe(socket, "presence-chat", "bob")
        await socket.send("client-typing", {"on": True}, "presence-chat")
        await socket.assert_open()  # frames are handled in order: the client event was too
        other = await served.pusher(APP_B)  # another app: not in this log
        await subscribe(other, "private-b")
        await other.close()
        sent = await served.http.post(
            "/console/api/apps/a1/events", headers=bearer(ADMIN),
            json={"channels": ["presence-chat", "news"], "name": "hello", "data": "hi"},
        )  # fmt: skip
        assert sent.status_code == 200
        await socket.close()
        entries = await log.entries(6)
        kinds = [entry["kind"] for entry in entries]
        assert kinds == ["connected", "subscribed", "client_event", "api_event",
                         "unsubscribed", "disconnected"], entries  # fmt: skip
        connected, subscribed, client_event, published, unsubscribed, _ = entries
        assert {e["node"] for e in entries} == {node.adapter.node_id}
        assert connected["socket_id"] == socket.socket_id
        assert subscribed["channels"] == ["presence-chat"] and subscribed["user_id"] == "bob"
        assert client_event["event"] == "client-typing"
        assert client_event["data"] == '{"on":true}' and client_event["user_id"] == "bob"
        assert published["channels"] == ["presence-chat", "news"]
        assert published["event"] == "hello" and published["data"] == "hi"
        assert published["via"] == "console"
        assert unsubscribed["channels"] == ["presence-chat"]
    finally:
        await log.close()


@pytest.mark.parametrize(
    ("token", "app_id", "code"),
    [("wrong", "a1", 4401), ("secret-a1", "b2", 4401), (ADMIN, "nope", 4404)],
)
def test_the_live_log_refuses_a_wrong_token(
    client: TestClient, token: str, app_id: str, code: int
) -> None:
    log = LogSocket(client, token, app_id)
    try:
        assert log.first["type"] == "error" and log.first["status"] == code - 4000
        with pytest.raises(WebSocketDisconnect) as closed:
            log.ws.receive_json()
        assert closed.value.code == code
    finally:
        log.close()


def test_the_live_log_wants_its_token_in_the_first_message(client: TestClient) -> None:
    with client.websocket_connect("/console/ws") as ws:
        ws.send_text("not json")
        assert ws.receive_json()["status"] == 400
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4400


# --------------------------------------------------------------------------- the tap


async def test_nothing_is_recorded_while_no_console_is_open(
    served: Served, node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded: list[str] = []
    for hook in ("published", "client_event", "subscribed", "unsubscribed", "connected",
                 "disconnected", "webhook", "_admit", "_emit"):  # fmt: skip
        monkeypatch.setattr(Tap, hook, lambda *args, name=hook, **kw: recorded.append(name))
    socket = await served.pusher(APP_A)
    await subscribe(socket, "private-x")
    await socket.send("client-x", {}, "private-x")
    await socket.assert_open()  # frames are handled in order: the client event was too
    await served.http.post(
        "/console/api/apps/a1/events", headers=bearer(ADMIN),
        json={"channel": "private-x", "name": "e", "data": "{}"},
    )  # fmt: skip
    await socket.expect("e")
    await socket.close()
    # the server forgets the socket: its disconnect hooks ran too
    await until(lambda: not node.endpoint.busy, "the socket left")
    assert not node.endpoint.tap.active
    assert recorded == []


async def test_webhook_requests_and_their_status_are_logged() -> None:
    statuses = iter([200, 503])

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(statuses))

    node = make_node()
    await node.app_manager.start()
    tap = Tap("n1")
    delivery = WebhookDelivery(node.app_manager, node.config.webhooks, tap=tap)
    delivery._http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    subscriber = tap.subscribe("a1")
    events = [{"name": "channel_occupied", "channel": "news"},
              {"name": "member_added", "channel": "presence-x", "user_id": "u"}]  # fmt: skip
    job = Job("j1", "webhooks", {
        "app_id": "a1",
        "target": {"url": "https://user:pw@hooks.example/in", "event_types": ["channel_occupied"]},
        "body": json.dumps({"time_ms": 0, "events": events}),
        "events": 2,
    }, attempts=1, enqueued_at=time.time())  # fmt: skip
    await delivery(job)
    job.attempts = 2
    with pytest.raises(Retry):
        await delivery(job)
    await delivery.close()
    sent, failed = tap.take(subscriber)[0]
    assert sent["kind"] == failed["kind"] == "webhook"
    assert sent["target"] == failed["target"] == "https://user:***@hooks.example/in"
    assert sent["event"] == "channel_occupied, member_added"
    assert sent["channels"] == ["news", "presence-x"]
    assert (sent["status"], sent["error"], sent["attempt"]) == (200, None, 1)
    assert (failed["status"], failed["error"], failed["attempt"]) == (None, "HTTP 503", 2)


def fake_clock() -> tuple[list[float], Any]:
    now = [100.0]
    return now, lambda: now[0]


def test_the_tap_samples_under_load_and_counts_what_it_drops() -> None:
    now, clock = fake_clock()
    tap = Tap("n1", rate=10, burst=5, buffer=100, clock=clock)
    subscriber = tap.subscribe("a")
    for i in range(20):
        tap.published("a", ["c"], f"e{i}", "{}", None, "http")
    entries, dropped = tap.take(subscriber)
    assert [e["event"] for e in entries] == ["e0", "e1", "e2", "e3", "e4"]
    assert dropped == 15
    now[0] += 0.35  # 3.5 tokens back
    for i in range(5):
        tap.connected("a", f"s{i}")
    entries, dropped = tap.take(subscriber)
    assert [e["socket_id"] for e in entries] == ["s0", "s1", "s2"] and dropped == 2
    assert tap.take(subscriber) == ([], 0)  # each drop is reported once


def test_a_slow_page_loses_entries_beyond_its_buffer_and_is_told() -> None:
    tap = Tap("n1", rate=1000, burst=1000, buffer=3)
    fast, slow = tap.subscribe("a"), tap.subscribe("a")
    for i in range(5):
        tap.connected("a", f"s{i}")
    assert tap.take(fast) == (tap.take(slow)[0], 2)  # both held three and lost two
    for i in range(2):
        tap.connected("a", f"t{i}")
    entries, dropped = tap.take(fast)
    assert [e["socket_id"] for e in entries] == ["t0", "t1"] and dropped == 0


def test_the_tap_is_active_only_while_an_app_is_watched() -> None:
    tap = Tap("n1")
    forwarded: list[tuple[str, str]] = []
    tap.forward = lambda app_id, entry: forwarded.append((app_id, entry["kind"]))
    assert not tap.active
    subscriber = tap.subscribe("a")
    assert tap.active
    tap.connected("b", "s1")  # an app nobody watches: not built, not counted
    assert tap.take(subscriber) == ([], 0) and tap.app_drops == {}
    tap.unsubscribe(subscriber)
    assert not tap.active
    tap.watch_remote({"b"})  # another node's console watches b
    assert tap.active
    tap.connected("b", "s2")
    assert forwarded == [("b", "connected")]
    tap.watch_remote(set())
    assert not tap.active


def test_long_data_is_cut_in_the_log() -> None:
    tap = Tap("n1")
    subscriber = tap.subscribe("a")
    tap.published("a", ["c"], "e", "x" * 1000, "1.2", "http")
    (entry,), _ = tap.take(subscriber)
    assert (entry["size"], len(entry["data"]), entry["truncated"]) == (1000, 200, True)
    assert entry["except"] == "1.2"
