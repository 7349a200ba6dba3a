"""``PusherHandler``: what the server does with each client frame, and on disconnect."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import orjson

from ..adapters import Adapter
from ..cache import Cache, channel_cache_key
from ..console.tap import Tap
from ..metrics.prometheus import text_size
from ..protocol import frames
from ..protocol.channels import (
    ChannelKind,
    channel_type,
    server_to_user_id,
    validate_channel_name,
)
from ..protocol.errors import ErrorCode, ProtocolError
from ..protocol.frames import ClientFrame, PresenceMember
from ..protocol.signatures import verify_channel_auth, verify_user_auth
from ..webhooks.events import CACHE_MISS, CLIENT_EVENT, SUBSCRIPTION_COUNT, wants
from .connection import Connection
from .eager import Handling, run_eagerly

if TYPE_CHECKING:
    from ..webhooks.dispatcher import WebhookDispatcher

log = logging.getLogger("sockudo_py.ws")

CLIENT_EVENT_PREFIX = "client-"


class SubscriptionRefused(Exception):
    """A subscribe that fails: answered with ``pusher:subscription_error`` on the channel."""

    def __init__(self, kind: str, reason: str, status: int) -> None:
        super().__init__(reason)
        self.kind, self.reason, self.status = kind, reason, status


class PusherHandler:
    """Dispatches client frames of every connection on this node.

    Frames of one connection are handled one at a time, in order. Nothing raised by bad
    input leaves ``handle``: it becomes a ``pusher:error`` (or ``pusher:subscription_error``)
    and the socket stays open unless the protocol says to close it. Client events, cache
    misses and subscription counts go to ``webhooks`` for the apps that want them; client
    events and (un)subscriptions to the console's ``tap``.
    """

    def __init__(
        self,
        adapter: Adapter,
        cache: Cache,
        webhooks: WebhookDispatcher | None = None,
        tap: Tap | None = None,
    ) -> None:
        self.adapter = adapter
        self.cache = cache
        self.webhooks = webhooks
        self.tap = Tap(adapter.node_id) if tap is None else tap

    def handle(self, conn: Connection, raw: str | bytes) -> Handling | None:
        """Handle a client frame. Pings and client events need no I/O and are handled here
        and now; for the other frames (which may wait on an app store, a cache or the
        cluster) the coroutine that handles them is returned, for the caller to run as a
        task, the socket's next frames waiting until it is done."""
        conn.mark_active()
        try:
            frame = frames.parse_frame(raw)
            event = frame.event
            if event == "pusher:ping":
                conn.send(frames.PONG)
            elif event == "pusher:pong":
                pass
            elif event.startswith(CLIENT_EVENT_PREFIX):
                self.client_event(conn, frame, text_size(raw))
            elif event == "pusher:subscribe":
                return self._guarded(conn, self.subscribe(conn, frames.parse_subscribe(frame.data)))
            elif event == "pusher:unsubscribe":
                channel = frames.parse_unsubscribe(frame.data)
                return self._guarded(conn, self.unsubscribe(conn, channel))
            elif event == "pusher:signin":
                return self._guarded(conn, self.signin(conn, frames.parse_signin(frame.data)))
            else:
                raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"Unknown event {event!r}")
        except ProtocolError as exc:
            conn.error(exc.code, exc.message)
        except Exception:
            log.exception("error handling a frame of %s", conn.socket_id)
            conn.error(ErrorCode.INVALID_MESSAGE, "Internal server error")
        return None

    @staticmethod
    async def _guarded(conn: Connection, work: Handling) -> None:
        """``work``, what it raises answered on the socket as ``handle`` does; the answer
        is written at once (not at the end of the loop iteration: a connect and subscribe
        takes a few round trips, and each would wait for one)."""
        try:
            await work
        except ProtocolError as exc:
            conn.error(exc.code, exc.message)
        except Exception:
            log.exception("error handling a frame of %s", conn.socket_id)
            conn.error(ErrorCode.INVALID_MESSAGE, "Internal server error")
        finally:
            conn.flush()

    # --- subscriptions -----------------------------------------------------------------

    async def subscribe(self, conn: Connection, request: frames.Subscribe) -> None:
        app_id, channel = conn.app.id, request.channel
        try:
            member = self._authorize(conn, request)
            if channel in conn.channels:  # idempotent: answer with what is in place
                members = None
                if conn.channels[channel] is not None:
                    members = await self.adapter.channel_members(app_id, channel)
                conn.send(frames.subscription_succeeded(channel, members))
                return
            if member is not None:
                members = await self.adapter.channel_members(app_id, channel)
                self._check_presence_room(conn, members, member)
        except SubscriptionRefused as refused:
            conn.send(
                frames.subscription_error(channel, refused.kind, refused.reason, refused.status)
            )
            return
        conn.channels[channel] = member
        result = await self.adapter.subscribe(app_id, channel, conn, member)
        conn.send(frames.subscription_succeeded(channel, result.members))
        if self.tap.active:
            self.tap.subscribed(app_id, channel, conn.socket_id, member)
        kind = channel_type(channel)
        if kind.requires_auth:
            conn.authenticated = True
        if kind.is_cache:
            cached = await self.cache.get(channel_cache_key(app_id, channel))
            if cached is not None:
                conn.send(cached)
            else:
                conn.send(frames.cache_miss(channel))
                if self.webhooks is not None and wants(conn.app, CACHE_MISS):
                    self.webhooks.cache_miss(app_id, channel)
        await self._count_changed(conn, channel)

    def _authorize(self, conn: Connection, request: frames.Subscribe) -> PresenceMember | None:
        """Check name and signature; the presence member for presence channels."""
        app, channel = conn.app, request.channel
        try:
            validate_channel_name(channel, app.max_channel_name_length)
        except ProtocolError as exc:
            raise SubscriptionRefused("InvalidChannel", exc.message, exc.code) from None
        kind = channel_type(channel).kind
        if kind is ChannelKind.SERVER_TO_USER:
            if conn.user_id is None or conn.user_id != server_to_user_id(channel):
                raise SubscriptionRefused(
                    "AuthError", "Only the signed-in user may subscribe to its channel", 401
                )
            return None
        if kind is ChannelKind.PUBLIC:
            return None
        channel_data = request.channel_data if kind is ChannelKind.PRESENCE else None
        if not verify_channel_auth(
            request.auth, app.key, app.secret, conn.socket_id, channel, channel_data
        ):
            raise SubscriptionRefused("AuthError", "Invalid signature", 401)
        if kind is not ChannelKind.PRESENCE:
            return None
        try:
            member = frames.parse_channel_data(channel_data)
        except ProtocolError as exc:
            raise SubscriptionRefused("AuthError", exc.message, 401) from None
        limit = app.max_presence_member_size_in_kb * 1024
        if len(orjson.dumps(member.user_info)) > limit:
            raise SubscriptionRefused(
                "LimitReached",
                f"user_info is larger than {app.max_presence_member_size_in_kb} KB",
                ErrorCode.CHANNEL_ERROR,
            )
        return member

    @staticmethod
    def _check_presence_room(
        conn: Connection, members: dict[str, PresenceMember], member: PresenceMember
    ) -> None:
        limit = conn.app.max_presence_members_per_channel
        if member.key not in members and len(members) >= limit:
            raise SubscriptionRefused(
                "LimitReached",
                f"The presence channel already has {limit} members",
                ErrorCode.OVER_CAPACITY,
            )

    async def _count_changed(self, conn: Connection, channel: str) -> None:
        """Send ``pusher:subscription_count`` to the channel and the ``subscription_count``
        webhook, if the app wants them (not for presence channels)."""
        app = conn.app
        hook = (
            self.webhooks if self.webhooks is not None and wants(app, SUBSCRIPTION_COUNT) else None
        )
        if not (app.enable_subscription_count or hook):
            return
        if channel_type(channel).kind is ChannelKind.PRESENCE:
            return
        count = (await self.adapter.channel_subscription_count(app.id, channel)).value
        if count and app.enable_subscription_count:
            await self.adapter.broadcast(app.id, channel, frames.subscription_count(channel, count))
        if hook is not None:
            hook.subscription_count(app.id, channel, count)

    async def unsubscribe(self, conn: Connection, channel: str) -> None:
        if channel not in conn.channels:
            return  # Pusher ignores an unsubscribe from a channel the socket is not in
        member = conn.channels.pop(channel)
        await self.adapter.unsubscribe(conn.app.id, channel, conn)
        if self.tap.active:
            self.tap.unsubscribed(conn.app.id, channel, conn.socket_id, member)
        await self._count_changed(conn, channel)

    # --- user authentication -----------------------------------------------------------

    async def signin(self, conn: Connection, request: frames.Signin) -> None:
        app = conn.app
        if not verify_user_auth(
            request.auth, app.key, app.secret, conn.socket_id, request.user_data
        ):
            raise ProtocolError(ErrorCode.UNAUTHORIZED, "Connection not authorized for signin.")
        user = frames.parse_user_data(request.user_data)
        if conn.user_id is not None:
            await self._forget_user(conn)
        conn.user_id, conn.user_data, conn.authenticated = user.id, request.user_data, True
        await self.adapter.sign_in(app.id, conn)
        conn.send(frames.signin_success(request.user_data))
        if app.enable_watchlist_events:
            await self._start_watching(conn, user.watchlist)

    async def _start_watching(self, conn: Connection, watchlist: list[str]) -> None:
        """Register the watchlist and tell the socket who of it is online now."""
        app_id = conn.app.id
        conn.watchlist = watchlist
        self.adapter.namespace(app_id).watch(conn, watchlist)
        online = [u for u in watchlist if await self.adapter.user_socket_count(app_id, u)]
        offline = [u for u in watchlist if u not in online]
        events = [(name, ids) for name, ids in (("online", online), ("offline", offline)) if ids]
        if events:
            conn.send(frames.watchlist_events(events))

    async def _forget_user(self, conn: Connection) -> None:
        self.adapter.namespace(conn.app.id).unwatch(conn, conn.watchlist)
        await self.adapter.sign_out(conn.app.id, conn)
        conn.user_id = None
        conn.watchlist = []

    # --- client events -----------------------------------------------------------------

    def client_event(self, conn: Connection, frame: ClientFrame, size: int) -> None:
        """Route a client event; ``size`` is its whole frame's length in bytes: a frame
        within the data limit is not measured again."""
        app, channel = conn.app, frame.channel

        def reject(reason: str) -> ProtocolError:
            return ProtocolError(ErrorCode.CLIENT_EVENT_REJECTED, reason)

        if not app.enable_client_messages:
            raise reject("Client events are not enabled for this app")
        if channel is None:
            raise reject("Client events need a channel")
        if not channel_type(channel).allows_client_events:
            raise reject("Client events can only be sent to private or presence channels")
        if channel not in conn.channels:
            raise reject(f"Not subscribed to {channel}")
        if len(frame.event) > app.max_event_name_length:
            raise reject(f"Event name is longer than {app.max_event_name_length} characters")
        limit = app.max_event_payload_in_kb * 1024
        if size > limit and len(orjson.dumps(frame.data)) > limit:
            raise reject(f"Event data is larger than {app.max_event_payload_in_kb} KB")
        if not conn.allow_client_event():
            if app.terminate_on_limit:
                conn.fail(ErrorCode.CLIENT_EVENT_REJECTED, "Client event rate limit exceeded")
                return
            raise reject("Client event rate limit exceeded")
        member = conn.channels[channel]
        user_id = member.user_id if member is not None else None
        # no adapter waits in broadcast (local delivery, the cluster's outbox): run it now
        run_eagerly(
            self.adapter.broadcast(
                app.id,
                channel,
                frames.channel_event(frame.event, channel, frame.data, user_id),
                conn.socket_id,
                started=conn.last_activity,  # when the frame arrived
            )
        )
        if self.tap.active:
            self.tap.client_event(app.id, channel, frame.event, frame.data, conn.socket_id, member)
        if self.webhooks is not None and wants(app, CLIENT_EVENT):
            user = member.key if member is not None else None
            self.webhooks.client_event(
                app.id, channel, frame.event, frame.data, conn.socket_id, user
            )

    # --- disconnect ----------------------------------------------------------------------

    async def disconnected(self, conn: Connection) -> None:
        """Leave every channel, sign out, forget the socket: the socket is gone."""
        for channel in list(conn.channels):
            await self.unsubscribe(conn, channel)
        if conn.user_id is not None:
            await self._forget_user(conn)
        await self.adapter.remove_socket(conn.app.id, conn)
