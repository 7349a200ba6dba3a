"""sockudo_py.client against a real sockudo-py process (tests/interop_server.py).

Every channel kind, presence with two clients, client events, encrypted channels published
with the PyPI ``pusher`` SDK, the auth endpoint mode, sign-in, watchlist and events sent to the
user, a server restart mid-subscription, close codes (4001 stops, 4100 backs off, 4200 retries
at once), ``max_attempts`` and a disabled policy, wss with a throwaway CA, keepalive against a
scripted server, and the sync facade.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import queue
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pusher
import pytest
from interop_server import RunningServer, ServerFactory, free_port
from pusher_ws import publish
from test_tls import APP as TLS_APP
from test_tls import Pki, make_pki, sdk, ssl_section
from websockets.asyncio.server import ServerConnection, serve

from sockudo_py.client import (
    CloseAction,
    ConnectionRefusedByServer,
    ConnectionState,
    Event,
    EventStream,
    Member,
    PresenceChannel,
    PusherClient,
    PusherClientError,
    ReconnectPolicy,
    SubscriptionError,
    close_action,
)
from sockudo_py.client.sync import SyncPusherClient
from sockudo_py.protocol.signatures import sign_channel, sign_user

KEY, SECRET = "app-key", "app-secret"
MASTER_KEY = base64.b64encode(bytes(range(32))).decode()
WAIT = 5.0
FAST = ReconnectPolicy(initial_delay=0.1, max_delay=0.5)


@pytest.fixture(scope="module")
def server(sockudo_server_factory_module: ServerFactory) -> RunningServer:
    # a numeric app id: the PyPI pusher SDK accepts nothing else
    overrides = {"id": "1001", "enable_watchlist_events": True}
    return sockudo_server_factory_module(app_overrides=overrides)


def authorizer(user_id: str | None = None, info: Any = None) -> Callable[[str, str], Any]:
    """A local authorizer signing with the app secret (as an auth endpoint would)."""

    async def authorize(socket_id: str, channel: str) -> dict[str, Any]:
        if channel.startswith("presence-"):
            channel_data = json.dumps({"user_id": user_id, "user_info": info})
            return {
                "auth": sign_channel(KEY, SECRET, socket_id, channel, channel_data),
                "channel_data": channel_data,
            }
        return {"auth": sign_channel(KEY, SECRET, socket_id, channel)}

    return authorize


def user_authenticator(user_id: str, watchlist: list[str] | None = None) -> Callable[[str], Any]:
    def authenticate(socket_id: str) -> dict[str, Any]:
        user_data = json.dumps({"id": user_id, "watchlist": watchlist or []})
        return {"auth": sign_user(KEY, SECRET, socket_id, user_data), "user_data": user_data}

    return authenticate


def client_for(server: RunningServer, key: str = KEY, **options: Any) -> PusherClient:
    options.setdefault("authorizer", authorizer("u"))
    options.setdefault("reconnect", FAST)
    return PusherClient(
        key, host=server.host, port=server.port, tls=False, trust_env=False, **options
    )


async def next_event(stream: EventStream, name: str | None = None) -> Event:
    """The next event of ``stream`` (named ``name``, if given), bounded."""
    while True:
        event = await stream.next(WAIT)
        if name is None or event.name == name:
            return event


# --- channels ------------------------------------------------------------------------------


async def test_public_channel_states_handlers_and_iteration(server: RunningServer) -> None:
    client = client_for(server)
    states: list[tuple[str, str]] = []
    client.on_state_change(lambda old, new: states.append((old.value, new.value)))
    assert client.state is ConnectionState.INITIALIZED and not client.is_connected
    async with client:
        assert client.is_connected and client.socket_id
        channel = await client.subscribe("public-news")
        assert channel.subscribed
        seen: list[Any] = []
        seen_async: list[Any] = []
        global_names: list[str] = []

        @channel.on("headline")
        def on_headline(event: Event) -> None:
            seen.append(event.data)

        @channel.on("headline")
        async def on_headline_async(event: Event) -> None:
            seen_async.append(event.data)

        client.bind_global(lambda event: global_names.append(event.name))
        stream = channel.events("headline")
        await publish(server, server.app, "public-news", "headline", {"title": "hello"})
        event = await next_event(stream)
        assert (event.name, event.channel, event.data) == (
            "headline",
            "public-news",
            {"title": "hello"},
        )
        await asyncio.sleep(0.05)
        assert seen == [{"title": "hello"}] and seen_async == [{"title": "hello"}]
        assert "headline" in global_names
        # async for over the channel itself (the iterator receives from its creation on)
        iterator = aiter(channel)
        await publish(server, server.app, "public-news", "headline", "plain text")
        async with asyncio.timeout(WAIT):
            async for event in iterator:
                if event.name == "headline":
                    assert event.data == "plain text"
                    break
        await client.unsubscribe("public-news")
        assert client.channel("public-news") is None
    assert client.state is ConnectionState.DISCONNECTED and not client.is_connected
    assert states[:2] == [("initialized", "connecting"), ("connecting", "connected")]
    assert states[-1][1] == "disconnected"


async def test_private_channel_and_subscription_error(server: RunningServer) -> None:
    async with client_for(server) as client:
        channel = await client.subscribe("private-orders")
        stream = channel.events("created")
        await publish(server, server.app, "private-orders", "created", {"id": 7})
        assert (await next_event(stream)).data == {"id": 7}

    async def wrong_secret(socket_id: str, channel: str) -> dict[str, Any]:
        return {"auth": sign_channel(KEY, "not-the-secret", socket_id, channel)}

    async with client_for(server, authorizer=wrong_secret) as client:
        errors = client.events("pusher:subscription_error")
        with pytest.raises(SubscriptionError) as info:
            await client.subscribe("private-orders", timeout=WAIT)
        assert info.value.type == "AuthError" and info.value.status == 401
        assert (await next_event(errors)).channel == "private-orders"
        assert client.channel("private-orders") is None
        assert client.is_connected  # a refused subscription leaves the socket open


async def test_presence_members_callbacks_and_client_events(server: RunningServer) -> None:
    name = "presence-room"
    async with (
        client_for(server, authorizer=authorizer("1", {"name": "ann"})) as ann,
        client_for(server, authorizer=authorizer("2", {"name": "bob"})) as bob,
    ):
        ann_room = await ann.subscribe(name)
        assert isinstance(ann_room, PresenceChannel)
        assert ann_room.members == {"1": {"name": "ann"}} and ann_room.me == Member(
            "1", {"name": "ann"}
        )
        added: list[Member] = []
        removed: list[Member] = []
        ann_room.on_member_added(lambda event: added.append(event.data))
        ann_room.on_member_removed(lambda event: removed.append(event.data))
        joined = ann_room.events("pusher:member_added", "pusher:member_removed")

        bob_room = await bob.subscribe(name)
        assert isinstance(bob_room, PresenceChannel)
        assert bob_room.members == {"1": {"name": "ann"}, "2": {"name": "bob"}}
        assert bob_room.me is not None and bob_room.me.id == "2" and bob_room.count == 2
        await next_event(joined, "pusher:member_added")
        assert added == [Member("2", {"name": "bob"})] and "2" in ann_room.members

        # client events: delivered to the other member with the sender's user_id, not echoed
        ann_msgs = ann_room.events("client-typing")
        bob_msgs = bob_room.events("client-typing")
        await ann_room.trigger("client-typing", {"typing": True})
        event = await next_event(bob_msgs)
        assert (event.data, event.user_id) == ({"typing": True}, "1")
        with pytest.raises(TimeoutError):
            await ann_msgs.next(0.3)

        await bob.unsubscribe(name)
        await next_event(joined, "pusher:member_removed")
        assert removed == [Member("2", {"name": "bob"})] and "2" not in ann_room.members


async def test_client_events_on_private_channel(server: RunningServer) -> None:
    async with client_for(server) as a, client_for(server) as b:
        ch_a = await a.subscribe("private-chat")
        ch_b = await b.subscribe("private-chat")
        stream = ch_b.events()
        await ch_a.trigger("client-message", {"text": "hi"})
        event = await next_event(stream, "client-message")
        assert event.data == {"text": "hi"}
        public = await a.subscribe("public-chat")
        with pytest.raises(Exception, match="private and presence"):
            await public.trigger("client-message", {})


async def test_encrypted_channel_with_the_pusher_sdk(server: RunningServer) -> None:
    sdk = pusher.Pusher(
        app_id=server.app["id"],
        key=KEY,
        secret=SECRET,
        host=server.host,
        port=server.port,
        ssl=False,
        encryption_master_key_base64=MASTER_KEY,
    )

    def sdk_authorizer(socket_id: str, channel: str) -> dict[str, Any]:
        return sdk.authenticate(channel=channel, socket_id=socket_id)  # type: ignore[no-any-return]

    name = "private-encrypted-vault"
    async with client_for(server, authorizer=sdk_authorizer) as client:
        channel = await client.subscribe(name)
        stream = channel.events("secret")
        await asyncio.to_thread(sdk.trigger, name, "secret", {"code": 1234, "who": "é"})
        event = await next_event(stream)
        assert event.data == {"code": 1234, "who": "é"}
        wire = json.loads(event.raw["data"])
        assert set(wire) == {"nonce", "ciphertext"}  # the server only ever saw ciphertext
        with pytest.raises(Exception, match="private and presence"):
            await channel.trigger("client-x", {})


async def test_cache_channel_miss_then_hit(server: RunningServer) -> None:
    name = "cache-prices"
    async with client_for(server) as first:
        misses = first.events("pusher:cache_miss")
        await first.subscribe(name)
        assert (await next_event(misses)).channel == name
    await publish(server, server.app, name, "price", {"eur": 10})
    async with client_for(server) as second:
        prices = second.events("price", "pusher:cache_miss")
        await second.subscribe(name)
        event = await next_event(prices)
        assert (event.name, event.data) == ("price", {"eur": 10})


# --- auth endpoint, sign-in --------------------------------------------------------------


class _AuthHandler(BaseHTTPRequestHandler):
    requests: list[tuple[str, dict[str, str], dict[str, str]]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        self.requests.append((self.path, form, dict(self.headers)))
        if self.headers.get("X-Token") != "t0ken":
            self.send_response(403)
            self.end_headers()
            return
        if self.path == "/user-auth":
            user_data = json.dumps({"id": "endpoint-user"})
            body = {
                "auth": sign_user(KEY, SECRET, form["socket_id"], user_data),
                "user_data": user_data,
            }
        else:
            body = {"auth": sign_channel(KEY, SECRET, form["socket_id"], form["channel_name"])}
        raw = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def auth_endpoint() -> Iterator[tuple[str, list[Any]]]:
    requests: list[Any] = []
    handler = type("Handler", (_AuthHandler,), {"requests": requests})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    finally:
        httpd.shutdown()
        httpd.server_close()


async def test_auth_endpoint_mode(
    server: RunningServer, auth_endpoint: tuple[str, list[Any]]
) -> None:
    url, requests = auth_endpoint
    async with client_for(
        server,
        authorizer=None,
        auth_endpoint=f"{url}/auth",
        user_auth_endpoint=f"{url}/user-auth",
        auth_headers={"X-Token": "t0ken"},
    ) as client:
        channel = await client.subscribe("private-endpoint")
        assert channel.subscribed
        path, form, headers = requests[0]
        assert path == "/auth" and form == {
            "socket_id": client.socket_id,
            "channel_name": "private-endpoint",
        }
        assert headers["Content-Type"] == "application/x-www-form-urlencoded"
        user = await client.signin()
        assert user.signed_in and user.id == "endpoint-user"
        assert requests[1][1] == {"socket_id": client.socket_id}
    async with client_for(server, authorizer=None, auth_endpoint=f"{url}/auth") as client:
        with pytest.raises(SubscriptionError, match="403"):
            await client.subscribe("private-endpoint", timeout=WAIT)


async def test_signin_and_watchlist(server: RunningServer) -> None:
    async with client_for(server, user_authenticator=user_authenticator("alice", ["bob"])) as alice:
        online = alice.user.watchlist.events()
        user = await alice.signin()
        assert (user.id, user.signed_in) == ("alice", True)
        bob = client_for(server, user_authenticator=user_authenticator("bob"))
        async with bob:
            await bob.signin()
            while True:
                event = await next_event(online)
                if event.name == "online" and "bob" in event.data["user_ids"]:
                    break
        while True:
            event = await next_event(online)
            if event.name == "offline" and "bob" in event.data["user_ids"]:
                break


# --- reconnection, refusal, keepalive -----------------------------------------------------


async def test_server_restart_resubscribes_without_user_code(
    sockudo_server_factory: ServerFactory,
) -> None:
    port = free_port()
    first = sockudo_server_factory(port=port)
    async with client_for(first) as client:
        codes: list[Any] = []
        client.bind("pusher:error", lambda event: codes.append(event.data["code"]))
        channel = await client.subscribe("private-restart")
        stream = channel.events("after")
        await asyncio.to_thread(first.stop)
        assert codes[:1] == [4200]  # the server's goodbye: reconnect at once
        await client.wait_for_state(
            ConnectionState.UNAVAILABLE, ConnectionState.CONNECTING, timeout=WAIT
        )
        assert not channel.subscribed
        second = await asyncio.to_thread(sockudo_server_factory, port=port)
        await client.wait_for_state(ConnectionState.CONNECTED, timeout=10)
        await channel.wait_subscribed(WAIT)
        await publish(second, second.app, "private-restart", "after", {"ok": True})
        assert (await next_event(stream)).data == {"ok": True}
        assert client.connection_attempts >= 2


async def test_unknown_key_4001_disconnects_without_reconnect_loop(server: RunningServer) -> None:
    client = client_for(server, key="no-such-key", reconnect=ReconnectPolicy(initial_delay=0.05))
    with pytest.raises(ConnectionRefusedByServer) as info:
        async with client:
            pass
    assert info.value.code == 4001
    assert client.state is ConnectionState.DISCONNECTED
    await asyncio.sleep(0.5)
    assert client.connection_attempts == 1 and client.state is ConnectionState.DISCONNECTED


@pytest.fixture
async def silent_server() -> AsyncIterator[tuple[int, list[list[str]]]]:
    """A scripted Pusher server: announces activity_timeout 1, pings the client once, and
    never answers the client's pings. Each connection's received frames are recorded."""
    connections: list[list[str]] = []

    async def handler(ws: ServerConnection) -> None:
        frames: list[str] = []
        connections.append(frames)
        data = json.dumps({"socket_id": f"{len(connections)}.1", "activity_timeout": 1})
        await ws.send(json.dumps({"event": "pusher:connection_established", "data": data}))
        await ws.send(json.dumps({"event": "pusher:ping", "data": {}}))
        async for message in ws:
            frames.append(json.loads(message)["event"])

    async with serve(handler, "127.0.0.1", 0) as ws_server:
        port = next(iter(ws_server.sockets)).getsockname()[1]
        yield port, connections


async def test_keepalive_pong_and_reconnect_when_no_pong(
    silent_server: tuple[int, list[list[str]]],
) -> None:
    port, connections = silent_server
    client = PusherClient(
        KEY,
        host="127.0.0.1",
        port=port,
        tls=False,
        trust_env=False,
        activity_timeout=30,
        pong_timeout=0.5,
        reconnect=FAST,
    )
    async with client:
        await client.wait_for_state(
            ConnectionState.UNAVAILABLE, ConnectionState.CONNECTING, timeout=WAIT
        )
        await client.wait_for_state(ConnectionState.CONNECTED, timeout=WAIT)
    first = connections[0]
    assert first[:2] == ["pusher:pong", "pusher:ping"]  # answered the server, then pinged it
    assert len(connections) >= 2 and client.connection_attempts >= 2


async def test_over_capacity_4100_backs_off_until_a_slot_frees(
    sockudo_server_factory: ServerFactory,
) -> None:
    """Node-wide ``max_connections: 1``: the second client is refused with 4100, goes
    ``unavailable`` and retries with growing delays (never faster than the policy), then
    connects once the first client left."""
    server = sockudo_server_factory({"max_connections": 1})
    policy = ReconnectPolicy(initial_delay=0.2, max_delay=1.0, jitter=0)
    async with client_for(server) as first:
        second = client_for(server, reconnect=policy)
        codes: list[Any] = []
        second.bind("pusher:error", lambda event: codes.append(event.data["code"]))
        tries: list[float] = []
        states: list[str] = []

        def on_state(old: ConnectionState, new: ConnectionState) -> None:
            states.append(new.value)
            if new is ConnectionState.CONNECTING:
                tries.append(time.monotonic())

        second.on_state_change(on_state)
        connecting = asyncio.create_task(second.connect())
        try:
            await second.wait_for_state(ConnectionState.UNAVAILABLE, timeout=WAIT)
            await asyncio.sleep(1.5)
            assert not connecting.done() and first.is_connected
            # 0.2 + 0.4 + 0.8 s of back-off: at most 4 tries in 1.5 s, not a tight loop
            assert 2 <= len(tries) <= 4, tries
            gaps = [b - a for a, b in itertools.pairwise(tries)]
            for n, gap in enumerate(gaps):
                assert gap >= policy.base_delay(n) * 0.9, gaps  # the delay grows
            assert set(codes) == {4100} and len(codes) >= len(tries) - 1
            assert states[:3] == ["connecting", "unavailable", "connecting"]
            await first.close()
            await asyncio.wait_for(connecting, 10)
            assert second.is_connected and second.connection_attempts == len(tries)
        finally:
            await second.close()


async def test_shutdown_4200_reconnects_at_once(sockudo_server_factory: ServerFactory) -> None:
    """SIGTERM closes every socket with 4200: the client tries again at once, although its
    back-off is 30 s; the next failures (the server is gone) back off. Reconnecting to a
    restarted server and subscribing again: test_server_restart_resubscribes_without_user_code.
    """
    server = sockudo_server_factory()
    slow = ReconnectPolicy(initial_delay=30, max_delay=30)
    async with client_for(server, reconnect=slow) as client:
        codes: list[Any] = []
        client.bind("pusher:error", lambda event: codes.append(event.data["code"]))
        await client.subscribe("public-shutdown")
        await asyncio.to_thread(server.stop)
        assert codes[:1] == [4200]
        await client.wait_for_state(ConnectionState.UNAVAILABLE, timeout=WAIT)
        deadline = asyncio.get_running_loop().time() + WAIT
        while client.connection_attempts < 2:  # well before the 30 s back-off
            assert asyncio.get_running_loop().time() < deadline, "no immediate reconnect"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        attempts = client.connection_attempts
        await asyncio.sleep(0.5)
        # the server is gone: connection refused backs off (30 s), no loop
        assert client.connection_attempts == attempts
        assert client.state is ConnectionState.UNAVAILABLE
    assert server.process.returncode == -15  # SIGTERM: a graceful stop, not a kill


async def test_max_attempts_gives_up_and_disabled_does_not_reconnect(
    sockudo_server_factory: ServerFactory,
) -> None:
    server = sockudo_server_factory()
    limited = client_for(server, reconnect=ReconnectPolicy(initial_delay=0.05, max_attempts=3))
    never = client_for(server, reconnect=ReconnectPolicy(enabled=False))
    async with limited, never:
        channel = await never.subscribe("public-gone")
        stream = channel.events()
        await asyncio.to_thread(server.stop)  # nothing listens on the port any more
        pending = asyncio.ensure_future(limited.subscribe("public-later", timeout=30))
        await limited.wait_for_state(ConnectionState.DISCONNECTED, timeout=10)
        # giving up ends what waits for the connection: no 30 s timeout, no endless stream
        with pytest.raises(Exception) as gave_up:
            await asyncio.wait_for(pending, WAIT)
        assert not isinstance(gave_up.value, TimeoutError)
        left = [event.name async for event in stream]  # ends (what came before is kept)
        assert set(left) <= {"pusher:subscription_count"}
        await never.wait_for_state(ConnectionState.DISCONNECTED, timeout=WAIT)
        await asyncio.sleep(0.5)
        # the first (established) connection, then 3 failed tries
        assert limited.connection_attempts == 4 and limited.state is ConnectionState.DISCONNECTED
        assert never.connection_attempts == 1 and never.state is ConnectionState.DISCONNECTED
        assert not channel.subscribed and not never.is_connected


async def test_events_sent_to_the_signed_in_user(server: RunningServer) -> None:
    """``send_to_user`` of the PyPI SDK (``#server-to-user-<id>``) reaches ``client.user``."""
    sdk_client = pusher.Pusher(
        app_id=server.app["id"], key=KEY, secret=SECRET, host=server.host, port=server.port,
        ssl=False,
    )  # fmt: skip
    async with client_for(server, user_authenticator=user_authenticator("carol")) as client:
        received: list[Any] = []
        client.user.bind("notice", lambda event: received.append(event.data))
        notices = client.user.events("notice")
        user = await client.signin()
        assert user.channel_name == "#server-to-user-carol"
        await asyncio.to_thread(sdk_client.send_to_user, "carol", "notice", {"n": 1})
        event = await next_event(notices)
        assert (event.name, event.channel, event.data) == (
            "notice",
            "#server-to-user-carol",
            {"n": 1},
        )
        await publish(server, server.app, "#server-to-user-carol", "notice", "raw api")
        assert (await next_event(notices)).data == "raw api"
        assert received == [{"n": 1}, "raw api"]
        assert client.channel("#server-to-user-carol") is None  # not a user-visible channel


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def test_wss_with_a_private_ca(sockudo_server_factory: ServerFactory, pki: Pki) -> None:
    """wss:// to a TLS server whose certificate a throwaway CA signed, trusted through the
    client's ``ssl`` context; the SDK publishes over https."""
    server = sockudo_server_factory(ssl_section(pki), apps=[TLS_APP], tls=pki.client_context())
    client = PusherClient(
        TLS_APP["key"], host=server.host, port=server.port, tls=True,
        ssl=pki.client_context(), trust_env=False, reconnect=FAST,
    )  # fmt: skip
    assert client.url.startswith(f"wss://{server.host}:{server.port}/")
    async with client:
        channel = await client.subscribe("public-tls")
        stream = channel.events("secure")
        await asyncio.to_thread(sdk(server, pki).trigger, "public-tls", "secure", {"tls": True})
        assert (await next_event(stream)).data == {"tls": True}
    untrusted = PusherClient(
        TLS_APP["key"], host=server.host, port=server.port, tls=True, trust_env=False,
        reconnect=ReconnectPolicy(enabled=False),
    )  # fmt: skip
    with pytest.raises(PusherClientError, match="CERTIFICATE_VERIFY_FAILED"):
        await untrusted.connect(WAIT)
    await untrusted.close()


# --- sync facade --------------------------------------------------------------------------


def test_sync_facade(server: RunningServer) -> None:
    def options() -> dict[str, Any]:
        return {
            "host": server.host,
            "port": server.port,
            "tls": False,
            "trust_env": False,
            "authorizer": authorizer("s"),
            "timeout": WAIT,
        }

    received: queue.Queue[Event] = queue.Queue()
    with (
        SyncPusherClient(KEY, **options()) as listener,
        SyncPusherClient(KEY, **options()) as sender,
    ):
        assert listener.is_connected and listener.state is ConnectionState.CONNECTED
        listener.subscribe("private-sync")
        listener.bind("private-sync", "client-ping", received.put)
        listener.bind("private-sync", "published", received.put)
        sender.subscribe("private-sync")
        sender.trigger("private-sync", "client-ping", {"n": 1})
        assert received.get(timeout=WAIT).data == {"n": 1}
        asyncio.run(publish(server, server.app, "private-sync", "published", [1, 2]))
        assert received.get(timeout=WAIT).data == [1, 2]
        listener.unsubscribe("private-sync")
        assert listener.client.channel("private-sync") is None
        sender.trigger("private-sync", "client-ping", {"n": 2})
        asyncio.run(publish(server, server.app, "private-sync", "published", [3]))
        with pytest.raises(queue.Empty):
            received.get(timeout=0.3)
        with pytest.raises(ValueError, match="subscribe first"):
            listener.trigger("private-sync", "client-ping", {})
    assert not listener.is_connected


def test_sync_signin(server: RunningServer) -> None:
    with SyncPusherClient(
        KEY, host=server.host, port=server.port, tls=False, trust_env=False,
        user_authenticator=user_authenticator("sync-user"), timeout=WAIT,
    ) as client:  # fmt: skip
        received: queue.Queue[Event] = queue.Queue()
        client.signin()
        assert client.client.user.signed_in and client.client.user.id == "sync-user"
        client.bind(None, "hello", received.put)
        asyncio.run(publish(server, server.app, "#server-to-user-sync-user", "hello", "hi"))
        assert received.get(timeout=WAIT).data == "hi"


# --- pure parts ---------------------------------------------------------------------------


def test_reconnect_policy_and_close_codes() -> None:
    policy = ReconnectPolicy()
    assert [policy.base_delay(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert policy.base_delay(10_000) == 30  # no overflow after many attempts
    for n in range(8):
        assert policy.base_delay(n) <= policy.delay(n) <= policy.base_delay(n) * 1.25
    assert policy.allows(10_000)  # unlimited by default
    assert not ReconnectPolicy(max_attempts=2).allows(2)
    assert not ReconnectPolicy(enabled=False).allows(0)
    assert [close_action(c) for c in (4001, 4099, 4100, 4199, 4200, 4299, 1006, None)] == [
        CloseAction.STOP,
        CloseAction.STOP,
        CloseAction.BACKOFF,
        CloseAction.BACKOFF,
        CloseAction.IMMEDIATE,
        CloseAction.IMMEDIATE,
        CloseAction.BACKOFF,
        CloseAction.BACKOFF,
    ]
    assert PusherClient("k", cluster="eu").url.startswith("wss://ws-eu.pusher.com:443/app/k?")
    assert PusherClient("k", host="h", port=6001, tls=False).url.startswith("ws://h:6001/app/k?")
