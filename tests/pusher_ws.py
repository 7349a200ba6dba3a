"""A small asyncio Pusher-protocol test client over raw WebSocket frames (``websockets``).

``await PusherWs.connect(server_or_url, key, secret)`` opens ``/app/{key}``, reads
``pusher:connection_established`` and keeps the socket id. ``expect(event, channel)`` waits
(bounded) for a matching frame; frames that do not match are kept in ``pending`` for later
``expect`` calls, so the order in which a test asks does not matter. Every wait is bounded.

Signing helpers wrap ``sockudo_py.protocol.signatures`` so tests sign exactly as a Pusher
auth endpoint would.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import Iterable
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from sockudo_py.protocol.signatures import sign_api_request, sign_channel, sign_user

DEFAULT_TIMEOUT = 3.0
QUERY = "?protocol=7&client=sockudo-py-tests&version=1.0"


class FrameTimeout(AssertionError):
    """An expected frame did not arrive in time (an assertion failure, with what did arrive)."""


def data_of(frame: dict[str, Any]) -> Any:
    """A frame's ``data``, JSON-decoded when it is a JSON string (as Pusher sends it)."""
    data = frame.get("data")
    if isinstance(data, str):
        try:
            return json.loads(data)
        except ValueError:
            return data
    return data


def ws_base(target: Any) -> str:
    """``ws://host:port`` of a ``RunningServer`` (or a URL given as is)."""
    return target if isinstance(target, str) else target.ws_url


def channel_auth(key: str, secret: str, socket_id: str, channel: str,
                 channel_data: str | None = None) -> str:
    return sign_channel(key, secret, socket_id, channel, channel_data)


def user_auth(key: str, secret: str, socket_id: str, user_data: str) -> str:
    return sign_user(key, secret, socket_id, user_data)


class PusherWs:
    """One raw Pusher connection."""

    def __init__(self, ws: ClientConnection, key: str, secret: str | None) -> None:
        self.ws = ws
        self.key = key
        self.secret = secret
        self.socket_id: str = ""
        self.established: dict[str, Any] = {}
        self.pending: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []  # every frame, in arrival order

    # --- connecting -----------------------------------------------------------------------

    @classmethod
    async def open(cls, target: Any, key: str, secret: str | None = None, *,
                   origin: str | None = None, query: str = QUERY,
                   max_size: int | None = 16 * 1024 * 1024,
                   compression: str | None = None) -> PusherWs:
        """Open the socket without reading anything (for admission tests); with
        ``compression="deflate"`` it offers permessage-deflate."""
        ws = await connect(
            f"{ws_base(target)}/app/{key}{query}",
            origin=origin,  # type: ignore[arg-type]
            compression=compression,
            proxy=None,
            open_timeout=DEFAULT_TIMEOUT,
            ping_interval=None,
            close_timeout=1,
            max_size=max_size,
        )
        return cls(ws, key, secret)

    @classmethod
    async def connect(cls, target: Any, key: str, secret: str | None = None,
                      **kwargs: Any) -> PusherWs:
        """Open the socket and read ``pusher:connection_established``."""
        client = await cls.open(target, key, secret, **kwargs)
        try:
            frame = await client.expect("pusher:connection_established", only=True)
        except BaseException:
            await client.close()
            raise
        client.established = data_of(frame)
        client.socket_id = client.established["socket_id"]
        return client

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError, OSError, ConnectionClosed):
            await asyncio.wait_for(self.ws.close(), 2)

    async def __aenter__(self) -> PusherWs:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- sending ----------------------------------------------------------------------------

    async def send(self, event: str, data: Any = None, channel: str | None = None) -> None:
        frame: dict[str, Any] = {"event": event, "data": {} if data is None else data}
        if channel is not None:
            frame["channel"] = channel
        await self.ws.send(json.dumps(frame))

    async def send_raw(self, message: str | bytes) -> None:
        await self.ws.send(message)

    # --- receiving --------------------------------------------------------------------------

    async def _recv(self, timeout: float) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        frame = json.loads(raw)
        self.received.append(frame)
        return frame  # type: ignore[no-any-return]

    @staticmethod
    def _matches(frame: dict[str, Any], event: str, channel: str | None) -> bool:
        return frame.get("event") == event and (channel is None or frame.get("channel") == channel)

    async def expect(self, event: str, channel: str | None = None,
                     timeout: float = DEFAULT_TIMEOUT, *, only: bool = False) -> dict[str, Any]:
        """The first frame ``event`` (on ``channel`` if given), pending ones first.

        Other frames are kept in ``pending``. With ``only``, any other frame is a failure.
        """
        for i, frame in enumerate(self.pending):
            if self._matches(frame, event, channel):
                return self.pending.pop(i)
            if only:
                raise AssertionError(f"expected {event!r} first, got {frame}")
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FrameTimeout(
                    f"no {event!r}{f' on {channel!r}' if channel else ''} within {timeout} s; "
                    f"unmatched frames: {self.pending}"
                )
            try:
                frame = await self._recv(left)
            except TimeoutError:
                continue
            except ConnectionClosed as exc:
                raise FrameTimeout(
                    f"socket closed ({self.close_code()}) while waiting for {event!r}; "
                    f"unmatched frames: {self.pending}"
                ) from exc
            if self._matches(frame, event, channel):
                return frame
            if only:
                raise AssertionError(f"expected {event!r} first, got {frame}")
            self.pending.append(frame)

    async def expect_none(self, event: str, channel: str | None = None,
                          within: float = 0.3) -> None:
        """Fail if ``event`` (on ``channel``) is pending or arrives within ``within`` s."""
        try:
            frame = await self.expect(event, channel, timeout=within)
        except FrameTimeout:
            return
        raise AssertionError(f"unexpected frame {frame}")

    async def drain(self, within: float = 0.2) -> list[dict[str, Any]]:
        """Everything pending plus whatever arrives within ``within`` s (all consumed)."""
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            try:
                self.pending.append(await self._recv(left))
            except (TimeoutError, ConnectionClosed):
                break
        frames, self.pending = self.pending, []
        return frames

    def close_code(self) -> int | None:
        rcvd = self.ws.protocol.close_rcvd
        return rcvd.code if rcvd is not None else None

    async def expect_close(self, timeout: float = DEFAULT_TIMEOUT) -> int | None:
        """Read (into ``pending``) until the server closes; the close code it sent."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FrameTimeout(f"socket still open after {timeout} s; frames: {self.pending}")
            try:
                self.pending.append(await self._recv(left))
            except TimeoutError:
                continue
            except ConnectionClosed:
                return self.close_code()

    async def assert_open(self) -> None:
        """The socket still answers ``pusher:ping`` with ``pusher:pong``."""
        await self.send("pusher:ping")
        await self.expect("pusher:pong")

    # --- Pusher operations ------------------------------------------------------------------

    def auth(self, channel: str, channel_data: str | None = None) -> str:
        assert self.secret is not None, "this client has no secret to sign with"
        return channel_auth(self.key, self.secret, self.socket_id, channel, channel_data)

    async def subscribe(self, channel: str, *, auth: str | None = None,
                        channel_data: str | None = None, sign: bool | None = None,
                        wait: bool = True) -> dict[str, Any] | None:
        """Subscribe (signing private/presence channels unless ``auth`` is given); with
        ``wait`` return the ``subscription_succeeded`` frame."""
        if sign is None:
            sign = channel.startswith(("private-", "presence-"))
        if auth is None and sign:
            auth = self.auth(channel, channel_data)
        data: dict[str, Any] = {"channel": channel}
        if auth is not None:
            data["auth"] = auth
        if channel_data is not None:
            data["channel_data"] = channel_data
        await self.send("pusher:subscribe", data)
        if not wait:
            return None
        return await self.expect("pusher_internal:subscription_succeeded", channel)

    async def subscribe_presence(self, channel: str, user_id: Any,
                                 user_info: Any = None) -> dict[str, Any]:
        """Join a presence channel; returns the decoded ``presence`` object."""
        body: dict[str, Any] = {"user_id": user_id}
        if user_info is not None:
            body["user_info"] = user_info
        frame = await self.subscribe(channel, channel_data=json.dumps(body))
        assert frame is not None
        return data_of(frame)["presence"]  # type: ignore[no-any-return]

    async def unsubscribe(self, channel: str) -> None:
        await self.send("pusher:unsubscribe", {"channel": channel})

    def signin_data(self, user_id: str, watchlist: Iterable[str] | None = None,
                    **extra: Any) -> dict[str, str]:
        body: dict[str, Any] = {"id": user_id, **extra}
        if watchlist is not None:
            body["watchlist"] = list(watchlist)
        user_data = json.dumps(body)
        assert self.secret is not None
        return {"user_data": user_data,
                "auth": user_auth(self.key, self.secret, self.socket_id, user_data)}

    async def signin(self, user_id: str, watchlist: Iterable[str] | None = None,
                     **extra: Any) -> dict[str, Any]:
        """Sign in; returns the ``pusher:signin_success`` frame."""
        await self.send("pusher:signin", self.signin_data(user_id, watchlist, **extra))
        return await self.expect("pusher:signin_success")


# --- HTTP API ------------------------------------------------------------------------------


def signed_params(key: str, secret: str, method: str, path: str, body: bytes = b"",
                  params: dict[str, str] | None = None, timestamp: int | None = None,
                  body_md5: str | None = None) -> dict[str, str]:
    """Query parameters of a signed HTTP API request (``auth_*`` and ``body_md5``)."""
    query: dict[str, str] = dict(params or {})
    query.update(
        auth_key=key,
        auth_timestamp=str(int(time.time()) if timestamp is None else timestamp),
        auth_version="1.0",
    )
    if body or body_md5 is not None:
        query["body_md5"] = body_md5 if body_md5 is not None else hashlib.md5(body).hexdigest()
    query["auth_signature"] = sign_api_request(secret, method, path, query)
    return query


async def api(target: Any, app: dict[str, Any], method: str, path: str, body: Any = None,
              *, params: dict[str, str] | None = None, raw_body: bytes | None = None,
              **sign: Any) -> httpx.Response:
    """A signed request to ``path`` (e.g. ``/apps/1001/events``) as ``app``; ``body`` is sent
    as JSON unless ``raw_body`` is given; ``sign`` goes to :func:`signed_params` (``key``,
    ``secret``, ``timestamp``, ``body_md5``) to sign differently."""
    data = raw_body if raw_body is not None else (
        b"" if body is None else json.dumps(body).encode())
    query = signed_params(sign.pop("key", app["key"]), sign.pop("secret", app["secret"]),
                          method, path, data, params, **sign)
    base = target if isinstance(target, str) else target.http_url
    async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=5) as client:
        return await client.request(
            method, path, params=query, content=data or None,
            headers={"Content-Type": "application/json"} if data else None,
        )


async def publish(target: Any, app: dict[str, Any], channel: str | list[str], name: str,
                  data: Any, **extra: Any) -> httpx.Response:
    """``POST /apps/{id}/events``; asserts 200."""
    body: dict[str, Any] = {"name": name, "data": data, **extra}
    body["channels" if isinstance(channel, list) else "channel"] = channel
    resp = await api(target, app, "POST", f"/apps/{app['id']}/events", body)
    assert resp.status_code == 200, resp.text
    return resp


async def subscription_count(target: Any, app: dict[str, Any], channel: str) -> int:
    """``channel``'s ``subscription_count`` from the HTTP API; asserts 200."""
    path = f"/apps/{app['id']}/channels/{channel}"
    resp = await api(target, app, "GET", path, params={"info": "subscription_count"})
    assert resp.status_code == 200, resp.text
    return int(resp.json()["subscription_count"])


async def close_all(*clients: PusherWs) -> None:
    await asyncio.gather(*(c.close() for c in clients))


__all__ = [
    "DEFAULT_TIMEOUT",
    "FrameTimeout",
    "PusherWs",
    "api",
    "channel_auth",
    "close_all",
    "data_of",
    "publish",
    "signed_params",
    "subscription_count",
    "user_auth",
    "ws_base",
]
