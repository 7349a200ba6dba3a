"""permessage-deflate (``websocket.compression``): negotiated only when on, frames intact.

A raw client offering deflate gets it in ``Sec-WebSocket-Extensions`` when compression is on
(and a big repetitive event arrives intact in far fewer bytes on the wire), and does not when
it is off. WebSocket pings still count as activity on a deflate socket. pusher-js works in
both modes with its Node transport (which offers no compression) and with the WHATWG
WebSocket (which offers it, as browsers do).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import Any

import pytest
from interop_server import NodeProcess, RunningServer, ServerFactory
from pusher_ws import PusherWs, api, publish
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode

from sockudo_py.ws.compression import WINDOW_BITS, deflate_factory

APP = {"id": "7692", "key": "deflate-key", "secret": "deflate-secret", "enabled": True}
BIG = "sockudo-py compresses this line well. " * 1500  # ~57 KB, under the 100 KB limit


@pytest.fixture(scope="module")
def on(sockudo_server_factory_module: ServerFactory) -> RunningServer:
    """Compression on (Sockudo's ``dedicated``); activity timeout 1 s for the ping test."""
    config = {"websocket": {"compression": "dedicated"}, "activity_timeout": 1}
    return sockudo_server_factory_module(config, apps=[APP])


@pytest.fixture(scope="module")
def off(sockudo_server_factory_module: ServerFactory) -> RunningServer:
    """The default: ``websocket.compression`` ``disabled``."""
    return sockudo_server_factory_module(apps=[APP])


def count_wire_bytes(client: PusherWs) -> Callable[[], int]:
    """From now on, count the bytes the socket reads off the network (before inflating)."""
    protocol = client.ws.protocol
    feed, seen = protocol.receive_data, [0]

    def receive_data(data: bytes) -> None:
        seen[0] += len(data)
        feed(data)

    protocol.receive_data = receive_data  # type: ignore[method-assign]
    return lambda: seen[0]


async def big_event_over(server: RunningServer, client: PusherWs) -> tuple[str, int]:
    """Publish ``BIG`` to a channel ``client`` joined; its data and the wire bytes it took."""
    channel = f"big-{time.monotonic_ns()}"
    await client.subscribe(channel)
    wire = count_wire_bytes(client)
    await publish(server, APP, channel, "payload", BIG)
    frame = await client.expect("payload", channel)
    return frame["data"], wire()


async def test_deflate_negotiated_when_on_and_frames_arrive_intact(on: RunningServer) -> None:
    async with await PusherWs.connect(on, APP["key"], compression="deflate") as client:
        extensions = client.ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert extensions.startswith("permessage-deflate"), extensions
        data, wire = await big_event_over(on, client)
    assert data == BIG
    assert wire < len(BIG) / 10, f"{wire} bytes on the wire for {len(BIG)} bytes of data"


@pytest.mark.parametrize(("mode", "offer"), [("off", "deflate"), ("on", None)])
async def test_plain_frames_unless_both_sides_want_deflate(
    request: pytest.FixtureRequest, mode: str, offer: str | None
) -> None:
    """Off: a client offering deflate does not get it. On: a client not offering it gets
    plain frames."""
    server: RunningServer = request.getfixturevalue(mode)
    async with await PusherWs.connect(server, APP["key"], compression=offer) as client:
        assert "Sec-WebSocket-Extensions" not in client.ws.response.headers
        data, wire = await big_event_over(server, client)
    assert data == BIG
    assert wire > len(BIG)


async def test_activity_tracking_on_a_deflate_socket(on: RunningServer) -> None:
    """WebSocket pings count as activity (no ``pusher:ping`` while they come, activity
    timeout 1 s); then, idle, the (compressed) ``pusher:ping`` comes and a compressed
    ``pusher:pong`` keeps the socket."""
    async with await PusherWs.connect(on, APP["key"], compression="deflate") as client:
        assert client.ws.response.headers.get("Sec-WebSocket-Extensions")
        for _ in range(5):
            await asyncio.sleep(0.4)
            await asyncio.wait_for(await client.ws.ping(), 2)
        await client.expect_none("pusher:ping", within=0.01)
        await client.expect("pusher:ping", timeout=3)
        await client.send("pusher:pong")
        await client.assert_open()


def pusher_js(server: RunningServer, sockets: tuple[str, ...]) -> list[dict[str, Any]]:
    """One pusher-js subscriber per socket kind; publish BIG and a small event once all are
    subscribed; their results."""
    channel = f"js-{time.monotonic_ns()}"
    params = {"host": server.host, "port": server.port, "key": APP["key"], "channel": channel,
              "events": 2}  # fmt: skip
    env = {"NODE_OPTIONS": "--experimental-websocket"}
    procs = [NodeProcess("subscriber.mjs", {**params, "socket": s}, env) for s in sockets]
    try:
        asyncio.run(wait_and_publish(server, channel, len(sockets)))
    finally:
        results = [proc.result(timeout=20) for proc in procs]
    return results


async def wait_and_publish(server: RunningServer, channel: str, subscribers: int) -> None:
    path = f"/apps/{APP['id']}/channels/{channel}"
    deadline = time.monotonic() + 10
    while True:
        info = await api(server, APP, "GET", path, params={"info": "subscription_count"})
        if info.json().get("subscription_count") == subscribers:
            break
        assert time.monotonic() < deadline, f"pusher-js did not subscribe in 10 s: {info.text}"
        await asyncio.sleep(0.1)
    await publish(server, APP, channel, "payload", BIG)
    await publish(server, APP, channel, "payload", "small")


@pytest.mark.parametrize("mode", ["on", "off"])
def test_pusher_js_in_both_modes(request: pytest.FixtureRequest, mode: str) -> None:
    server: RunningServer = request.getfixturevalue(mode)
    node, browser = pusher_js(server, ("node", "browser"))
    expected = [
        {"length": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest()}
        for text in (BIG, "small")
    ]
    for result in (node, browser):
        assert result["ok"], result
        assert result["events"] == expected
    assert node["extensions"] is None  # faye-websocket offers nothing (and does not tell)
    if mode == "on":
        assert browser["extensions"].startswith("permessage-deflate"), browser
    else:
        assert browser["extensions"] == "", browser


@pytest.mark.parametrize("value", sorted(WINDOW_BITS))
def test_every_sockudo_compression_value_answers_a_browser_offer(value: str) -> None:
    """Each of Sockudo's values accepts the offer browsers send, and what the server then
    compresses (twice: with and without context takeover) inflates back on the client."""
    factory = deflate_factory(value.upper())
    assert factory is not None and deflate_factory("disabled") is None
    params, server = factory.process_request_params([("client_max_window_bits", None)], [])
    bits = WINDOW_BITS[value]
    assert ("server_max_window_bits", str(bits)) in params
    assert (("server_no_context_takeover", None) in params) is (value == "shared")
    client = PerMessageDeflate(value == "shared", False, bits, bits)
    for _ in range(2):
        frame = server.encode(Frame(Opcode.TEXT, BIG.encode()))
        assert frame.rsv1 and len(frame.data) < len(BIG) / 10
        assert client.decode(frame).data == BIG.encode()
