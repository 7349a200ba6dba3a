"""The ``local`` adapter: one node, no broker. Every answer comes from the local registry."""

from __future__ import annotations

from ..core import Namespace, Socket
from ..protocol import frames
from ..protocol.errors import ErrorCode
from ..protocol.frames import PresenceMember
from .base import Adapter, Answer, JoinResult

TERMINATED = "You got disconnected by the app."


class LocalAdapter(Adapter):
    """Single-node adapter: delivery and queries over this process's namespaces.

    The cluster adapters build on it: the ``_member_*`` and ``_user_*`` steps are where a
    presence or sign-in change, local or from another node, reaches this node's sockets.
    """

    async def add_socket(self, app_id: str, socket: Socket) -> None:
        self.namespace(app_id).add_socket(socket)

    async def remove_socket(self, app_id: str, socket: Socket) -> None:
        ns = self.namespace(app_id)
        ns.remove_socket(socket)
        self._release(ns)

    async def sign_in(self, app_id: str, socket: Socket) -> None:
        ns = self.namespace(app_id)
        if ns.add_user(socket):
            assert socket.user_id is not None
            self._user_changed(ns, socket.user_id, "online")

    async def sign_out(self, app_id: str, socket: Socket) -> None:
        ns = self.namespace(app_id)
        if ns.remove_user(socket):
            assert socket.user_id is not None
            self._user_changed(ns, socket.user_id, "offline")

    async def subscribe(
        self, app_id: str, channel: str, socket: Socket, member: PresenceMember | None = None
    ) -> JoinResult:
        ns = self.namespace(app_id)
        new = ns.join(channel, socket)
        if new:
            first = ns.subscription_count(channel) == 1
            self.observer.subscribed(app_id, channel, first)
            if first:
                self._locally_occupied(ns, channel, True)
        if member is None:
            return JoinResult(new)
        if new:
            self._local_member_joined(ns, channel, socket.socket_id, member)
        return JoinResult(new, ns.members(channel))

    async def unsubscribe(self, app_id: str, channel: str, socket: Socket) -> bool:
        ns = self.namespace(app_id)
        if not ns.leave(channel, socket):
            return False
        if socket.socket_id in ns.presence.get(channel, ()):
            self._local_member_left(ns, channel, socket.socket_id)
        last = not ns.subscription_count(channel)
        self.observer.unsubscribed(app_id, channel, last)
        if last:
            self._locally_occupied(ns, channel, False)
        return True

    # --- transitions, shared with the cluster adapters ----------------------------------

    def _local_member_joined(
        self, ns: Namespace, channel: str, socket_id: str, member: PresenceMember
    ) -> None:
        """A socket of this node joined presence channel ``channel`` as ``member``."""
        self._member_joined(ns, channel, socket_id, member)

    def _local_member_left(self, ns: Namespace, channel: str, socket_id: str) -> None:
        """A presence member's socket of this node left ``channel``."""
        self._member_left(ns, channel, socket_id)

    def _member_joined(
        self, ns: Namespace, channel: str, socket_id: str, member: PresenceMember
    ) -> bool:
        """Record a member; tell this node's subscribers if its user is new to the channel."""
        if not ns.add_member(channel, socket_id, member):
            return False
        self._deliver(ns, channel, frames.member_added(channel, member), socket_id)
        if self.listener is not None and self._reports(ns.app_id, channel):
            self.listener.member_added(ns.app_id, channel, member.key)
        return True

    def _member_left(self, ns: Namespace, channel: str, socket_id: str) -> bool:
        """Forget a member; tell this node's subscribers if its user left the channel."""
        gone = ns.remove_member(channel, socket_id)
        if gone is None:
            return False
        self._deliver(ns, channel, frames.member_removed(channel, gone))
        if self.listener is not None and self._reports(ns.app_id, channel):
            self.listener.member_removed(ns.app_id, channel, gone.key)
        return True

    def _locally_occupied(self, ns: Namespace, channel: str, occupied: bool) -> None:
        """This node's first socket joined ``channel`` (or its last one left). With one
        node that is the channel's transition."""
        self._occupancy_changed(ns, channel, occupied)

    def _occupancy_changed(self, ns: Namespace, channel: str, occupied: bool) -> None:
        """``channel`` became occupied (or vacated) cluster-wide: tell the listener, if this
        node owns the channel."""
        listener = self.listener
        if listener is not None and self._reports(ns.app_id, channel):
            if occupied:
                listener.channel_occupied(ns.app_id, channel)
            else:
                listener.channel_vacated(ns.app_id, channel)

    def _reports(self, app_id: str, channel: str) -> bool:
        """Whether this node tells the listener about ``channel``'s transitions now (the
        only node does)."""
        return True

    @staticmethod
    def _user_changed(ns: Namespace, user_id: str, status: str) -> None:
        """Tell this node's watchers of ``user_id`` that it came ``online``/went ``offline``."""
        if user_id in ns.watchers:
            ns.notify_watchers(user_id, frames.watchlist_events([(status, [user_id])]))

    # --- delivery ----------------------------------------------------------------------

    async def broadcast(
        self, app_id: str, channel: str, frame: str, except_socket_id: str | None = None,
        started: float | None = None,
    ) -> None:  # fmt: skip
        ns = self._namespaces.get(app_id)
        if ns is not None:
            self._deliver(ns, channel, frame, except_socket_id, started)

    def _deliver(
        self, ns: Namespace, channel: str, frame: str, except_socket_id: str | None = None,
        started: float | None = None,
    ) -> None:  # fmt: skip
        """Queue ``frame`` on this node's sockets of ``channel`` (but one) and report the
        fan-out, once, to the observer."""
        count = ns.deliver(channel, frame, except_socket_id)
        if count:
            self.observer.delivered(ns.app_id, channel, frame, count, started)

    async def terminate_user_connections(self, app_id: str, user_id: str) -> None:
        self._terminate_local(app_id, user_id)

    def _terminate_local(self, app_id: str, user_id: str) -> None:
        ns = self._namespaces.get(app_id)
        if ns is not None:
            for socket in ns.user_sockets(user_id):
                socket.send(frames.error(ErrorCode.UNAUTHORIZED, TERMINATED))
                socket.close(ErrorCode.UNAUTHORIZED, TERMINATED)

    # --- queries -----------------------------------------------------------------------

    def _local_sockets_count(self, app_id: str) -> int:
        ns = self._namespaces.get(app_id)
        return len(ns.sockets) if ns is not None else 0

    def _local_channels(self, app_id: str) -> dict[str, int]:
        ns = self._namespaces.get(app_id)
        return ns.channel_counts() if ns is not None else {}

    def _local_subscription_count(self, app_id: str, channel: str) -> int:
        ns = self._namespaces.get(app_id)
        return ns.subscription_count(channel) if ns is not None else 0

    async def sockets_count(self, app_id: str) -> Answer[int]:
        return Answer(self._local_sockets_count(app_id))

    async def channels(self, app_id: str) -> Answer[dict[str, int]]:
        return Answer(self._local_channels(app_id))

    async def channel_subscription_count(self, app_id: str, channel: str) -> Answer[int]:
        return Answer(self._local_subscription_count(app_id, channel))

    async def channel_members(self, app_id: str, channel: str) -> dict[str, PresenceMember]:
        ns = self._namespaces.get(app_id)
        return ns.members(channel) if ns is not None else {}

    async def user_socket_count(self, app_id: str, user_id: str) -> int:
        ns = self._namespaces.get(app_id)
        return ns.online.get(user_id, 0) if ns is not None else 0
