"""Channels as the client sees them: public, private, presence and private-encrypted.

A channel object lives from ``client.subscribe(name)`` to ``client.unsubscribe(name)``; it is
re-subscribed by the client after every reconnect (``subscribed`` is false meanwhile).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from ..protocol.channels import ChannelKind, ChannelType, channel_type
from . import encryption
from .errors import AuthorizationError, PusherClientError, SubscriptionError
from .events import Emitter, Event, Handler, decode_data

if TYPE_CHECKING:
    from .client import PusherClient

log = logging.getLogger("sockudo_py.client")


def _new_future() -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    # nobody may be waiting (a re-subscription after a reconnect): never warn about it
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return future


class Channel(Emitter):
    """One subscribed channel: bind handlers (``@channel.on("event")``, ``bind``,
    ``bind_global``), read events with ``async for event in channel``, send client events with
    :meth:`trigger`. ``subscribed`` says whether the server confirmed the subscription on the
    current connection; ``subscription_count`` is the server's count when the app sends it.

    Events named by the server ``pusher_internal:*`` are handed over as pusher-js names them:
    ``pusher:subscription_succeeded``, ``pusher:subscription_count``; ``pusher:cache_miss``
    and ``pusher:subscription_error`` come as they are.
    """

    def __init__(self, client: PusherClient, name: str) -> None:
        super().__init__()
        self.name = name
        self.type: ChannelType = channel_type(name)
        self.subscribed = False
        self.subscription_count: int | None = None
        self._client = client
        self._result: asyncio.Future[None] = _new_future()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} subscribed={self.subscribed}>"

    # --- subscription ---------------------------------------------------------------------

    async def wait_subscribed(self, timeout: float | None = None) -> None:
        """Wait until the server confirmed the subscription; raises
        :class:`SubscriptionError` when it refused it, ``TimeoutError`` after ``timeout``."""
        await asyncio.wait_for(asyncio.shield(self._result), timeout)

    def _reset(self) -> None:
        """The connection is gone: the next one must subscribe again."""
        self.subscribed = False
        if self._result.done():
            self._result = _new_future()

    def _fail(self, error: BaseException) -> None:
        if not self._result.done():
            self._result.set_exception(error)

    async def _subscribe(self, socket_id: str) -> None:
        """Authorize if needed and send ``pusher:subscribe`` on connection ``socket_id``."""
        self._reset()
        data: dict[str, Any] = {"channel": self.name}
        if self.type.requires_auth:
            try:
                auth = await self._client._authorize_channel(socket_id, self.name)
                self._apply_auth(auth)
            except (AuthorizationError, encryption.DecryptionError) as exc:
                error = SubscriptionError(self.name, "AuthError", str(exc))
                self._fail(error)
                self._emit_all(Event("pusher:subscription_error", self.name, {"type": "AuthError"}))
                return
            data["auth"] = auth["auth"]
            if auth.get("channel_data") is not None:
                data["channel_data"] = auth["channel_data"]
        if socket_id != self._client.socket_id:
            return  # the connection changed meanwhile: the new one subscribes again
        await self._client._send("pusher:subscribe", data)

    def _apply_auth(self, auth: dict[str, Any]) -> None:
        """Keep what the auth response carries for this channel kind."""

    def _on_succeeded(self, data: Any) -> None:
        """Subscription confirmed with ``data`` (decoded)."""

    # --- incoming frames ------------------------------------------------------------------

    def _handle(self, frame: dict[str, Any]) -> Event | None:
        """Handle a frame of this channel; return the event handed to the user, if any."""
        name = frame.get("event", "")
        data = decode_data(frame.get("data"))
        if name == "pusher_internal:subscription_succeeded":
            self._on_succeeded(data)
            self.subscribed = True
            if not self._result.done():
                self._result.set_result(None)
            event = Event("pusher:subscription_succeeded", self.name, data, raw=frame)
        elif name == "pusher:subscription_error":
            body = data if isinstance(data, dict) else {}
            self._fail(
                SubscriptionError(
                    self.name,
                    str(body.get("type", "Error")),
                    str(body.get("error", data)),
                    int(body.get("status") or 0),
                )
            )
            event = Event(name, self.name, data, raw=frame)
        elif name == "pusher_internal:subscription_count":
            if isinstance(data, dict) and isinstance(data.get("subscription_count"), int):
                self.subscription_count = data["subscription_count"]
            event = Event("pusher:subscription_count", self.name, data, raw=frame)
        else:
            if name.startswith("pusher_internal:"):
                other = self._internal(name, data, frame)
            else:
                other = self._user_event(name, frame)
            if other is None:
                return None
            event = other
        self.emit(event)
        return event

    def _internal(self, name: str, data: Any, frame: dict[str, Any]) -> Event | None:
        log.debug("ignoring %s on %s", name, self.name)
        return None

    def _user_event(self, name: str, frame: dict[str, Any]) -> Event | None:
        user_id = frame.get("user_id")
        return Event(
            name,
            self.name,
            decode_data(frame.get("data")),
            None if user_id is None else str(user_id),
            raw=frame,
        )

    def _emit_all(self, event: Event) -> None:
        self.emit(event)
        self._client._emitter.emit(event)

    # --- outgoing -------------------------------------------------------------------------

    async def trigger(self, event: str, data: Any = None) -> None:
        """Send a client event (``client-*``) to the channel's other subscribers. Only on
        private and presence channels, once subscribed; raises :class:`PusherClientError`
        otherwise (the server would refuse it)."""
        if not event.startswith("client-"):
            raise ValueError(f"client event names start with 'client-', got {event!r}")
        if not self.type.allows_client_events:
            raise PusherClientError(
                f"client events are only allowed on private and presence channels, "
                f"not on {self.name!r}"
            )
        if not self.subscribed:
            raise PusherClientError(f"not subscribed to {self.name!r}")
        await self._client._send(event, {} if data is None else data, self.name)

    async def unsubscribe(self) -> None:
        """Leave the channel (same as ``client.unsubscribe(channel.name)``)."""
        await self._client.unsubscribe(self.name)


@dataclass(frozen=True, slots=True)
class Member:
    """A presence member: ``id`` (text, as pusher-js keys members) and ``info``."""

    id: str
    info: Any = None


class PresenceChannel(Channel):
    """A ``presence-`` channel: ``members`` maps each member's id to its ``user_info``, ``me``
    is this connection's member (from the ``channel_data`` of the auth response). Member
    events arrive as ``pusher:member_added`` / ``pusher:member_removed`` with a
    :class:`Member` as ``data``; :meth:`on_member_added` / :meth:`on_member_removed` bind
    handlers to them."""

    def __init__(self, client: PusherClient, name: str) -> None:
        super().__init__(client, name)
        self.members: dict[str, Any] = {}
        self.me: Member | None = None

    @property
    def count(self) -> int:
        return len(self.members)

    def on_member_added(self, handler: Handler) -> Handler:
        return self.bind("pusher:member_added", handler)

    def on_member_removed(self, handler: Handler) -> Handler:
        return self.bind("pusher:member_removed", handler)

    def _apply_auth(self, auth: dict[str, Any]) -> None:
        channel_data = auth.get("channel_data")
        if not isinstance(channel_data, str):
            raise AuthorizationError("presence auth needs 'channel_data' (JSON text)")
        try:
            body = orjson.loads(channel_data)
            self.me = Member(str(body["user_id"]), body.get("user_info"))
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise AuthorizationError("'channel_data' must be JSON with a 'user_id'") from exc

    def _reset(self) -> None:
        super()._reset()
        self.members = {}

    def _on_succeeded(self, data: Any) -> None:
        presence = data.get("presence", {}) if isinstance(data, dict) else {}
        info = presence.get("hash") or {}
        self.members = {str(i): info.get(str(i)) for i in presence.get("ids") or []}
        if self.me is not None and self.me.id in self.members:
            self.me = Member(self.me.id, self.members[self.me.id])

    def _internal(self, name: str, data: Any, frame: dict[str, Any]) -> Event | None:
        if not isinstance(data, dict) or "user_id" not in data:
            return None
        member_id = str(data["user_id"])
        if name == "pusher_internal:member_added":
            member = Member(member_id, data.get("user_info"))
            self.members[member_id] = member.info
            return Event("pusher:member_added", self.name, member, member_id, raw=frame)
        if name == "pusher_internal:member_removed":
            info = self.members.pop(member_id, None)
            return Event(
                "pusher:member_removed", self.name, Member(member_id, info), member_id, raw=frame
            )
        return None


class EncryptedChannel(Channel):
    """A ``private-encrypted-`` channel: events are decrypted with the ``shared_secret`` of
    the auth response (NaCl secretbox, PyNaCl); ``data`` is the decrypted JSON (or text). An
    event that cannot be decrypted is handed over as ``pusher:decryption_error`` with the
    reason as ``data``. Client events cannot be sent on these channels."""

    def __init__(self, client: PusherClient, name: str) -> None:
        super().__init__(client, name)
        self._key: bytes | None = None

    def _apply_auth(self, auth: dict[str, Any]) -> None:
        secret = auth.get("shared_secret")
        if isinstance(secret, bytes):  # the PyPI ``pusher`` SDK's authenticate() gives bytes
            secret = secret.decode("ascii", "replace")
        if not isinstance(secret, str):
            raise AuthorizationError("private-encrypted auth needs a 'shared_secret'")
        self._key = encryption.shared_secret_key(secret)

    def _user_event(self, name: str, frame: dict[str, Any]) -> Event | None:
        if name.startswith("pusher:") or self._key is None:
            return super()._user_event(name, frame)
        try:
            plain = encryption.decrypt(self._key, frame.get("data"))
        except encryption.DecryptionError as exc:
            log.warning("%s on %s: %s", name, self.name, exc)
            return Event("pusher:decryption_error", self.name, str(exc), raw=frame)
        return Event(name, self.name, decode_data(plain), raw=frame)


def make_channel(client: PusherClient, name: str) -> Channel:
    """The channel class for ``name``'s kind."""
    kinds: dict[ChannelKind, Callable[[PusherClient, str], Channel]] = {
        ChannelKind.PRESENCE: PresenceChannel,
        ChannelKind.ENCRYPTED: EncryptedChannel,
    }
    return kinds.get(channel_type(name).kind, Channel)(client, name)
