"""The ``local`` adapter: one node, no broker. Every answer comes from the local registry."""

from __future__ import annotations

from ..core import Socket
from ..protocol import frames
from ..protocol.errors import ErrorCode
from ..protocol.frames import PresenceMember
from .base import Adapter, JoinResult, LeaveResult


class LocalAdapter(Adapter):
    """Single-node adapter: delivery and queries over this process's namespaces."""

    async def subscribe(
        self, app_id: str, channel: str, socket: Socket, member: PresenceMember | None = None
    ) -> JoinResult:
        ns = self.namespace(app_id)
        new = ns.join(channel, socket, member)
        first = new and member is not None and ns.user_count_in(channel, member.key) == 1
        return JoinResult(new, ns.subscription_count(channel), first)

    async def unsubscribe(self, app_id: str, channel: str, socket: Socket) -> LeaveResult:
        ns = self.namespace(app_id)
        left, member = ns.leave(channel, socket)
        gone = member if member is not None and not ns.user_count_in(channel, member.key) else None
        return LeaveResult(left, ns.subscription_count(channel), gone)

    async def broadcast(
        self, app_id: str, channel: str, frame: str, except_socket_id: str | None = None
    ) -> None:
        ns = self._namespaces.get(app_id)
        if ns is not None:
            ns.deliver(channel, frame, except_socket_id)

    async def terminate_user_connections(self, app_id: str, user_id: str) -> None:
        ns = self._namespaces.get(app_id)
        if ns is not None:
            reason = "You got disconnected by the app."
            for socket in ns.user_sockets(user_id):
                socket.send(frames.error(ErrorCode.UNAUTHORIZED, reason))
                socket.close(ErrorCode.UNAUTHORIZED, reason)

    async def sockets_count(self, app_id: str) -> int:
        ns = self._namespaces.get(app_id)
        return len(ns.sockets) if ns is not None else 0

    async def channels(self, app_id: str) -> dict[str, int]:
        ns = self._namespaces.get(app_id)
        return ns.channel_counts() if ns is not None else {}

    async def channel_subscription_count(self, app_id: str, channel: str) -> int:
        ns = self._namespaces.get(app_id)
        return ns.subscription_count(channel) if ns is not None else 0

    async def channel_members(self, app_id: str, channel: str) -> dict[str, PresenceMember]:
        ns = self._namespaces.get(app_id)
        return ns.members(channel) if ns is not None else {}

    async def user_socket_count(self, app_id: str, user_id: str) -> int:
        ns = self._namespaces.get(app_id)
        return len(ns.users.get(user_id, ())) if ns is not None else 0
