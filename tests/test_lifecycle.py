"""Server lifecycle over real sockets: graceful shutdown (4200) and slow consumers (4100)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import time

import httpx
import websockets
from interop_server import RunningServer, ServerFactory
from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.uri import parse_uri

from sockudo_py.protocol.signatures import sign_api_request


async def connect(server: RunningServer) -> websockets.ClientConnection:
    ws = await websockets.connect(f"{server.ws_url}/app/{server.app['key']}?protocol=7")
    frame = json.loads(await asyncio.wait_for(ws.recv(), 3))
    assert frame["event"] == "pusher:connection_established"
    return ws


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
    proto.send_text(
        json.dumps({"event": "pusher:subscribe", "data": {"channel": channel}}).encode()
    )
    sock.sendall(b"".join(proto.data_to_send()))
    return sock


async def subscribe(ws: websockets.ClientConnection, channel: str) -> None:
    await ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": channel}}))
    frame = json.loads(await asyncio.wait_for(ws.recv(), 3))
    assert frame["event"] == "pusher_internal:subscription_succeeded"


def signed(
    server: RunningServer, method: str, path: str, body: bytes = b"", **query: str
) -> dict[str, str]:
    app = server.app
    params = {
        "auth_key": app["key"],
        "auth_timestamp": str(int(time.time())),
        "auth_version": "1.0",
        **query,
    }
    if method == "POST":
        params["body_md5"] = hashlib.md5(body).hexdigest()
    params["auth_signature"] = sign_api_request(app["secret"], method, path, params)
    return params


async def publish(http: httpx.AsyncClient, server: RunningServer, channel: str, data: str) -> None:
    path = f"/apps/{server.app['id']}/events"
    body = json.dumps({"name": "flood", "channel": channel, "data": data}).encode()
    response = await http.post(path, content=body, params=signed(server, "POST", path, body))
    assert response.status_code == 200, response.text


async def channel_count(http: httpx.AsyncClient, server: RunningServer, channel: str) -> int:
    path = f"/apps/{server.app['id']}/channels/{channel}"
    response = await http.get(path, params=signed(server, "GET", path, info="subscription_count"))
    assert response.status_code == 200, response.text
    return int(response.json()["subscription_count"])


async def test_shutdown_closes_sockets_with_4200(sockudo_server: RunningServer) -> None:
    ws = await connect(sockudo_server)
    sockudo_server.process.send_signal(15)
    frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert frame == {
        "event": "pusher:error",
        "data": {"code": 4200, "message": "Server is shutting down"},
    }
    try:
        await asyncio.wait_for(ws.recv(), 5)
    except websockets.ConnectionClosed as closed:
        assert closed.rcvd is not None and closed.rcvd.code == 4200
    else:
        raise AssertionError("socket not closed")
    # uvicorn re-raises the SIGTERM it caught once shutdown is complete
    assert sockudo_server.process.wait(timeout=15) in (0, -15)


async def test_slow_consumer_is_dropped_and_others_keep_receiving(
    sockudo_server_factory: ServerFactory,
) -> None:
    server = sockudo_server_factory({"websocket": {"max_messages": 50, "max_bytes": 1_000_000}})
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as http:
        slow = stalled_subscriber(server, "feed")
        fast = await connect(server)
        await subscribe(fast, "feed")
        payload = "x" * 60_000
        received = 0
        deadline = time.monotonic() + 20
        while await channel_count(http, server, "feed") == 2:
            assert time.monotonic() < deadline, "slow consumer never dropped"
            for _ in range(10):
                await publish(http, server, "feed", payload)
            while True:  # the fast client drains everything published so far
                try:
                    frame = json.loads(await asyncio.wait_for(fast.recv(), 0.2))
                    received += frame["event"] == "flood"
                except TimeoutError:
                    break
        assert received > 0
        await publish(http, server, "feed", "after")
        while True:
            frame = json.loads(await asyncio.wait_for(fast.recv(), 3))
            if frame["data"] == "after":
                break
        fresh = await connect(server)
        await subscribe(fresh, "feed")
        assert await channel_count(http, server, "feed") == 2
        slow.close()
        for ws in (fast, fresh):
            await ws.close()
