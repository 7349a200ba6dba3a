"""Server lifecycle over real sockets: graceful shutdown (4200) and slow consumers (4100)."""

from __future__ import annotations

import json
import socket
import time

from interop_server import RunningServer, ServerFactory
from pusher_ws import FrameTimeout, PusherWs, publish, subscription_count
from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.uri import parse_uri


def stalled_subscriber(server: RunningServer, channel: str) -> socket.socket:
    """A client that subscribes to ``channel`` and then never reads again, with a tiny
    receive buffer: the server's writes to it back up at once."""
    sock = socket.create_connection((server.host, server.port), timeout=3)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    proto = ClientProtocol(parse_uri(f"{server.ws_url}/app/{server.app['key']}"))
    proto.send_request(proto.connect())
    sock.sendall(b"".join(proto.data_to_send()))
    while proto.state is not State.OPEN:  # the handshake response
        proto.receive_data(sock.recv(4096))
        proto.events_received()
    subscribe = {"event": "pusher:subscribe", "data": {"channel": channel}}
    proto.send_text(json.dumps(subscribe).encode())
    sock.sendall(b"".join(proto.data_to_send()))
    return sock


async def test_shutdown_closes_sockets_with_4200(sockudo_server: RunningServer) -> None:
    client = await PusherWs.connect(sockudo_server, sockudo_server.app["key"])
    sockudo_server.process.send_signal(15)
    frame = await client.expect("pusher:error")
    assert frame["data"] == {"code": 4200, "message": "Server is shutting down"}
    assert await client.expect_close() == 4200
    # uvicorn re-raises the SIGTERM it caught once shutdown is complete
    assert sockudo_server.process.wait(timeout=15) in (0, -15)


async def test_slow_consumer_is_dropped_and_others_keep_receiving(
    sockudo_server_factory: ServerFactory,
) -> None:
    server = sockudo_server_factory({"websocket": {"max_messages": 50, "max_bytes": 1_000_000}})
    app = server.app
    slow = stalled_subscriber(server, "feed")
    fast = await PusherWs.connect(server, app["key"])
    await fast.subscribe("feed")
    received = 0
    deadline = time.monotonic() + 20
    while await subscription_count(server, server.app, "feed") == 2:
        assert time.monotonic() < deadline, "slow consumer never dropped"
        for _ in range(10):
            await publish(server, app, "feed", "flood", "x" * 60_000)
        while True:  # the fast client drains everything published so far
            try:
                await fast.expect("flood", "feed", timeout=0.2)
                received += 1
            except FrameTimeout:
                break
    assert received > 0
    await publish(server, app, "feed", "after", "still here")
    assert (await fast.expect("after", "feed"))["data"] == "still here"
    async with await PusherWs.connect(server, app["key"]) as fresh:
        await fresh.subscribe("feed")
        assert await subscription_count(server, server.app, "feed") == 2
    slow.close()
    await fast.close()
