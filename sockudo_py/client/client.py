"""``PusherClient``: one Pusher protocol 7 connection with reconnection, keepalive, channels,
authorization and user sign-in, on asyncio (``websockets``' client)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from ..protocol import frames
from ..protocol.channels import ChannelKind, channel_type, validate_channel_name
from ..protocol.errors import ErrorCode, ProtocolError
from . import encryption, errors
from .auth import ChannelAuthorizer, EndpointAuthorizer, UserAuthenticator, call_auth
from .channel import Channel, make_channel
from .errors import AuthorizationError, PusherClientError, SigninError
from .events import Emitter, Event, Handler, call_handler, decode_data
from .reconnect import CloseAction, ReconnectPolicy, close_action
from .user import User

log = logging.getLogger("sockudo_py.client")

CLIENT_NAME = "sockudo-py"
CLIENT_VERSION = "0.1.0"


class ConnectionState(StrEnum):
    """pusher-js's connection states."""

    INITIALIZED = "initialized"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    UNAVAILABLE = "unavailable"
    DISCONNECTED = "disconnected"


StateCallback = Callable[[ConnectionState, ConnectionState], Awaitable[None] | None]
"""Called with ``(previous, current)`` on every state change (sync or ``async``)."""


class PusherClient:
    """An asyncio Pusher client.

    ``async with PusherClient(key, host=..., port=..., tls=False) as client:`` connects (and
    raises :class:`ConnectionRefusedByServer` when the server refuses the key); leaving the
    block closes. ``cluster="eu"`` means ``ws-eu.pusher.com``. The connection is kept up:
    lost connections are retried after ``reconnect``'s back-off (close codes 4000-4099 stop
    the client, 4100-4199 back off, 4200-4299 reconnect at once) and every channel is
    subscribed again, and the user signed in again, with no user code. After
    ``activity_timeout`` seconds of silence (the server's value when lower) the client sends
    ``pusher:ping`` and drops the connection when no answer comes within ``pong_timeout``.

    Private, presence and private-encrypted channels are authorized by ``authorizer``
    (``(socket_id, channel_name) -> dict``, sync or async) or by POSTing ``socket_id`` and
    ``channel_name`` to ``auth_endpoint`` with ``auth_headers``; :meth:`signin` uses
    ``user_authenticator`` (``(socket_id) -> dict``) or ``user_auth_endpoint`` alike.

    ``bind(name, handler)`` receives the events ``name`` of every channel and of the
    connection (``pusher:error``...), ``bind_global(handler)`` every event;
    ``on_state_change(callback)`` each ``(previous, current)`` state.
    """

    def __init__(
        self,
        key: str,
        *,
        host: str | None = None,
        port: int | None = None,
        tls: bool = True,
        cluster: str | None = None,
        auth_endpoint: str | None = None,
        auth_headers: Mapping[str, str] | None = None,
        authorizer: ChannelAuthorizer | None = None,
        user_authenticator: UserAuthenticator | None = None,
        user_auth_endpoint: str | None = None,
        activity_timeout: float = 120.0,
        pong_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        reconnect: ReconnectPolicy | None = None,
        ssl: ssl_module.SSLContext | None = None,
        trust_env: bool = True,
    ) -> None:
        if not key:
            raise ValueError("an app key is required")
        if activity_timeout <= 0 or pong_timeout <= 0:
            raise ValueError("activity_timeout and pong_timeout must be > 0")
        self.key = key
        self.host = host or f"ws-{cluster or 'mt1'}.pusher.com"
        self.tls = tls
        self.port = port if port is not None else (443 if tls else 80)
        self.activity_timeout = activity_timeout
        self.pong_timeout = pong_timeout
        self.connect_timeout = connect_timeout
        self.reconnect = reconnect if reconnect is not None else ReconnectPolicy()
        self.ssl = ssl
        self.trust_env = trust_env
        headers = dict(auth_headers or {})
        self._authorizer: Callable[..., Any] | None = authorizer
        if self._authorizer is None and auth_endpoint:
            endpoint = EndpointAuthorizer(auth_endpoint, headers, trust_env=trust_env)
            self._authorizer = endpoint.authorize_channel
        self._user_authenticator: Callable[..., Any] | None = user_authenticator
        if self._user_authenticator is None and user_auth_endpoint:
            endpoint = EndpointAuthorizer(user_auth_endpoint, headers, trust_env=trust_env)
            self._user_authenticator = endpoint.authenticate_user

        self.state = ConnectionState.INITIALIZED
        self.socket_id: str | None = None
        self.connection_attempts = 0
        """How many times a connection was opened (tried), since the client was created."""
        self.last_error: BaseException | None = None
        self.user = User()
        self._emitter = Emitter()
        self._channels: dict[str, Channel] = {}
        self._state_callbacks: list[StateCallback] = []
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._server_activity: float | None = None
        self._signin_wanted = False
        self._state_changed = asyncio.Event()
        self._error_reason = ""

    # --- connection -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        scheme = "wss" if self.tls else "ws"
        query = f"protocol=7&client={CLIENT_NAME}&version={CLIENT_VERSION}&flash=false"
        return f"{scheme}://{self.host}:{self.port}/app/{self.key}?{query}"

    @property
    def is_connected(self) -> bool:
        """Whether the WebSocket is open now and the server established the connection."""
        ws = self._ws
        return ws is not None and ws.state is State.OPEN and self.socket_id is not None

    def on_state_change(self, callback: StateCallback) -> StateCallback:
        """Call ``callback(previous, current)`` on every state change; usable as decorator."""
        self._state_callbacks.append(callback)
        return callback

    def _set_state(self, state: ConnectionState) -> None:
        previous, self.state = self.state, state
        if previous is state:
            return
        log.debug("connection %s -> %s", previous.value, state.value)
        self._state_changed.set()
        self._state_changed = asyncio.Event()
        for callback in list(self._state_callbacks):
            call_handler(callback, previous, state)

    async def wait_for_state(
        self, *states: ConnectionState | str, timeout: float | None = None
    ) -> ConnectionState:
        """Wait until the state is one of ``states``; returns it (``TimeoutError`` after
        ``timeout`` seconds)."""
        wanted = {ConnectionState(s) for s in states}

        async def wait() -> ConnectionState:
            while self.state not in wanted:
                await self._state_changed.wait()
            return self.state

        return await asyncio.wait_for(wait(), timeout)

    async def connect(self, timeout: float | None = None) -> None:
        """Start connecting (if not yet) and wait until connected. Raises
        :class:`ConnectionRefusedByServer` (4000-4099 close), :class:`ClientClosedError` when
        the client stopped otherwise, ``TimeoutError`` after ``timeout`` seconds."""
        if self._task is None or self._task.done():
            self._closing = False
            self.last_error = None
            self._task = asyncio.get_running_loop().create_task(self._run())

        async def wait() -> None:
            while self.state is not ConnectionState.CONNECTED:
                if self._task is None or self._task.done():
                    if isinstance(self.last_error, PusherClientError):
                        raise self.last_error
                    raise errors.ClientClosedError(f"could not connect: {self.last_error!r}")
                changed = asyncio.ensure_future(self._state_changed.wait())
                try:
                    await asyncio.wait([changed, self._task], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    changed.cancel()

        await asyncio.wait_for(wait(), timeout)

    async def close(self) -> None:
        """Close the connection and stop reconnecting; ends every event stream."""
        self._closing = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._set_state(ConnectionState.DISCONNECTED)
        self._end(errors.ClientClosedError("the client was closed"))
        for pending in list(self._tasks):
            pending.cancel()

    def _end(self, error: BaseException) -> None:
        """No connection will come any more: pending subscriptions and sign-ins fail with
        ``error`` and every event stream ends."""
        for channel in self._channels.values():
            channel._fail(error)
            channel._end_streams()
        self.user._failed(error)
        self._emitter._end_streams()

    async def __aenter__(self) -> PusherClient:
        try:
            await self.connect()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _run(self) -> None:
        """Connect, serve, and reconnect per the policy until closed or refused."""
        attempt = 0
        try:
            while not self._closing:
                self._set_state(ConnectionState.CONNECTING)
                self.connection_attempts += 1
                code: int | None = None
                try:
                    ws = await ws_connect(
                        self.url,
                        # wss without a context of its own: the default (True), not None
                        ssl=(self.ssl or True) if self.tls else None,
                        open_timeout=self.connect_timeout,
                        ping_interval=None,
                        close_timeout=2,
                        proxy=True if self.trust_env else None,
                    )
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.last_error = exc
                    log.info("connecting to %s failed: %r", self.host, exc)
                else:
                    self._ws = ws
                    try:
                        code, established = await self._serve(ws)
                    finally:
                        self._lost()
                    if established:
                        attempt = 0
                if self._closing:
                    break
                action = close_action(code)
                if action is CloseAction.STOP:
                    assert code is not None
                    self.last_error = errors.ConnectionRefusedByServer(code, self._error_reason)
                    log.warning("%s", self.last_error)
                    break
                if not self.reconnect.allows(attempt):
                    break
                delay = 0.0 if action is CloseAction.IMMEDIATE else self.reconnect.delay(attempt)
                attempt += 1
                self._set_state(ConnectionState.UNAVAILABLE)
                log.info("reconnecting in %.2f s (close code %s)", delay, code)
                await asyncio.sleep(delay)
        finally:
            self._set_state(ConnectionState.DISCONNECTED)
            if not self._closing:  # refused, or out of attempts: nothing more will come
                self._end(self.last_error or errors.ClientClosedError("gave up reconnecting"))

    def _lost(self) -> None:
        self._ws = None
        self.socket_id = None
        for channel in self._channels.values():
            channel._reset()
        if self._signin_wanted:
            self.user._begin()

    async def _serve(self, ws: ClientConnection) -> tuple[int | None, bool]:
        """Read frames until the socket closes; returns the close code (``None`` when the
        connection broke without one) and whether it was ever established."""
        self._error_reason = ""
        established = False
        awaiting_pong = False
        while True:
            timeout = self.pong_timeout if awaiting_pong else self._activity_timeout()
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout)
            except TimeoutError:
                if awaiting_pong:
                    log.info("no pong within %s s: reconnecting", self.pong_timeout)
                    with contextlib.suppress(Exception):
                        await ws.close(ErrorCode.PONG_NOT_RECEIVED, "no pong")
                    return ErrorCode.PONG_NOT_RECEIVED, established
                awaiting_pong = True
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(frames.PING)
                continue
            except ConnectionClosed:
                break
            awaiting_pong = False
            if self._dispatch(raw, ws):
                established = True
        rcvd = ws.protocol.close_rcvd
        if rcvd is not None and rcvd.reason and not self._error_reason:
            self._error_reason = rcvd.reason
        return (rcvd.code if rcvd is not None else None), established

    def _activity_timeout(self) -> float:
        if self._server_activity is None:
            return self.activity_timeout
        return min(self.activity_timeout, self._server_activity)

    # --- incoming frames ------------------------------------------------------------------

    def _dispatch(self, raw: str | bytes, ws: ClientConnection) -> bool:
        """Handle one frame; true when it was ``pusher:connection_established``."""
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("ignoring a frame that is not JSON: %.200r", raw)
            return False
        if not isinstance(frame, dict) or not isinstance(frame.get("event"), str):
            log.warning("ignoring a frame without an event: %.200r", raw)
            return False
        name: str = frame["event"]
        channel_name = frame.get("channel")
        if isinstance(channel_name, str):
            channel = self._channels.get(channel_name)
            if channel is not None:
                event = channel._handle(frame)
                if event is not None:
                    self._emitter.emit(event)
            elif channel_name == self.user.channel_name:
                if name == "pusher_internal:subscription_succeeded":
                    self.user._ready()
                elif name == "pusher:subscription_error":
                    log.warning("the server refused %s: %.200r", channel_name, frame.get("data"))
                    self.user._ready()
                elif not name.startswith("pusher"):
                    event = Event(name, channel_name, decode_data(frame.get("data")), raw=frame)
                    self.user.emit(event)
                    self._emitter.emit(event)
            return False
        data = decode_data(frame.get("data"))
        if name == "pusher:connection_established":
            self._established(data, ws)
            return True
        if name == "pusher:ping":
            self._spawn(self._send_raw(frames.PONG, ws))
            return False
        if name == "pusher:pong":
            return False
        if name == "pusher:error":
            self._on_error(data)
        elif name == "pusher:signin_success":
            body = data if isinstance(data, dict) else {}
            self.user._succeeded(body.get("user_data"))
            if self.user.channel_name is not None:
                self._spawn(self._send("pusher:subscribe", {"channel": self.user.channel_name}))
            else:
                self.user._ready()  # no id: no channel of the user's to wait for
        elif name == "pusher_internal:watchlist_events":
            self.user.watchlist._handle(frame)
            return False
        self._emitter.emit(Event(name, None, data, raw=frame))
        return False

    def _established(self, data: Any, ws: ClientConnection) -> None:
        body = data if isinstance(data, dict) else {}
        socket_id = body.get("socket_id")
        if not isinstance(socket_id, str):
            log.warning("connection_established without a socket_id: %r", data)
            return
        self.socket_id = socket_id
        activity = body.get("activity_timeout")
        self._server_activity = float(activity) if isinstance(activity, int | float) else None
        self._set_state(ConnectionState.CONNECTED)
        for channel in list(self._channels.values()):
            self._spawn(channel._subscribe(socket_id))
        if self._signin_wanted:
            self._spawn(self._signin(socket_id))

    def _on_error(self, data: Any) -> None:
        body = data if isinstance(data, dict) else {}
        code, message = body.get("code"), str(body.get("message", ""))
        self._error_reason = message
        log.info("pusher:error %s: %s", code, message)
        if code == ErrorCode.UNAUTHORIZED and self._signin_wanted and not self.user.signed_in:
            self.user._failed(SigninError(f"the server refused the sign-in: {message}"))

    # --- outgoing -------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[Any]) -> None:
        async def run() -> None:
            try:
                await coro
            except (ConnectionClosed, PusherClientError) as exc:
                log.info("background send failed: %r", exc)
            except Exception:
                log.exception("client task failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_raw(self, text: str, ws: ClientConnection | None = None) -> None:
        ws = ws or self._ws
        if ws is None or ws.state is not State.OPEN:
            raise PusherClientError("not connected")
        await ws.send(text)

    async def _send(self, event: str, data: Any, channel: str | None = None) -> None:
        frame: dict[str, Any] = {"event": event, "data": data}
        if channel is not None:
            frame["channel"] = channel
        await self._send_raw(frames.dumps(frame))

    async def send_event(self, event: str, data: Any, channel: str | None = None) -> None:
        """Send a raw frame ``{event, data, channel}`` (for protocol extensions)."""
        await self._send(event, data, channel)

    # --- channels -------------------------------------------------------------------------

    @property
    def channels(self) -> dict[str, Channel]:
        """The channels subscribed to (a copy), by name."""
        return dict(self._channels)

    def channel(self, name: str) -> Channel | None:
        return self._channels.get(name)

    async def subscribe(self, name: str, *, timeout: float | None = 30.0) -> Channel:
        """Subscribe to ``name`` (authorizing private, presence and encrypted channels) and
        wait for the server's confirmation; returns the channel. Raises
        :class:`SubscriptionError` when the server (or the authorizer) refuses it, and
        ``TimeoutError`` after ``timeout`` seconds. Subscribing twice returns the same
        channel."""
        try:
            validate_channel_name(name)
        except ProtocolError as exc:
            raise errors.SubscriptionError(name, "InvalidChannel", exc.message) from None
        kind = channel_type(name)
        if kind.requires_auth and self._authorizer is None:
            raise errors.SubscriptionError(
                name, "AuthError", "private channels need an authorizer or auth_endpoint"
            )
        if kind.kind is ChannelKind.ENCRYPTED:
            encryption.ensure_available()
        channel = self._channels.get(name)
        if channel is None:
            channel = make_channel(self, name)
            self._channels[name] = channel
            if self.is_connected and self.socket_id is not None:
                self._spawn(channel._subscribe(self.socket_id))
        try:
            await channel.wait_subscribed(timeout)
        except errors.SubscriptionError:
            if self._channels.get(name) is channel:
                del self._channels[name]
            raise
        return channel

    async def unsubscribe(self, name: str) -> None:
        """Leave channel ``name``; its event streams end."""
        channel = self._channels.pop(name, None)
        if channel is None:
            return
        channel.subscribed = False
        channel._fail(errors.ClientClosedError(f"unsubscribed from {name!r}"))
        channel._end_streams()
        if self.is_connected:
            with contextlib.suppress(ConnectionClosed, PusherClientError):
                await self._send("pusher:unsubscribe", {"channel": name})

    async def _authorize_channel(self, socket_id: str, channel_name: str) -> dict[str, Any]:
        if self._authorizer is None:
            raise AuthorizationError("no authorizer or auth_endpoint configured")
        return await call_auth(self._authorizer, socket_id, channel_name)

    # --- events ---------------------------------------------------------------------------

    def bind(self, name: str, handler: Handler) -> Handler:
        """``handler(event)`` for every event ``name``, on any channel or the connection."""
        return self._emitter.bind(name, handler)

    def on(self, name: str) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`bind`."""
        return self._emitter.on(name)

    def unbind(self, name: str | None = None, handler: Handler | None = None) -> None:
        self._emitter.unbind(name, handler)

    def bind_global(self, handler: Handler) -> Handler:
        """``handler(event)`` for every event of every channel and of the connection."""
        return self._emitter.bind_global(handler)

    def unbind_global(self, handler: Handler | None = None) -> None:
        self._emitter.unbind_global(handler)

    def events(self, *names: str, maxsize: int = 100) -> Any:
        """A bounded stream of every event (or those named), for ``async for``."""
        return self._emitter.events(*names, maxsize=maxsize)

    # --- user -----------------------------------------------------------------------------

    async def signin(self, timeout: float | None = 30.0) -> User:
        """Sign in with ``user_authenticator`` / ``user_auth_endpoint`` and wait for the
        server's ``pusher:signin_success`` and the user's channel (``#server-to-user-<id>``)
        subscribed, so events sent to the user from then on arrive; the user is signed in
        again after reconnects. Raises :class:`SigninError`."""
        if self._user_authenticator is None:
            raise SigninError("no user_authenticator or user_auth_endpoint configured")
        self._signin_wanted = True
        result = self.user._begin()
        if self.is_connected and self.socket_id is not None:
            self._spawn(self._signin(self.socket_id))
        await asyncio.wait_for(asyncio.shield(result), timeout)
        return self.user

    async def _signin(self, socket_id: str) -> None:
        assert self._user_authenticator is not None
        try:
            auth = await call_auth(self._user_authenticator, socket_id)
        except AuthorizationError as exc:
            self.user._failed(SigninError(str(exc)))
            return
        user_data = auth.get("user_data")
        if not isinstance(user_data, str):
            self.user._failed(SigninError("user authentication must return 'user_data' text"))
            return
        if socket_id == self.socket_id:
            await self._send("pusher:signin", {"user_data": user_data, "auth": auth["auth"]})
