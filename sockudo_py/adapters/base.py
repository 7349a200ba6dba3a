"""The adapter interface: how a node delivers to sockets and answers questions about them.

An adapter owns this node's ``Namespace`` per app and, in a cluster, the only path to the
other nodes. Every query is async and cluster-wide; the server core never asks which
adapter it has.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from ..core import Namespace, Socket
from ..protocol.frames import PresenceMember


@dataclass(slots=True)
class JoinResult:
    """Outcome of a subscribe: ``new`` is False for a repeated subscribe of the same socket;
    ``first_for_user`` says the presence member is new to the channel cluster-wide;
    ``subscription_count`` is the channel's cluster-wide socket count afterwards."""

    new: bool
    subscription_count: int
    first_for_user: bool = False


@dataclass(slots=True)
class LeaveResult:
    """Outcome of an unsubscribe: ``left`` is False if the socket was not subscribed;
    ``member_gone`` is the presence member when its user has no socket left in the channel
    cluster-wide; ``subscription_count`` is the channel's cluster-wide count afterwards."""

    left: bool
    subscription_count: int
    member_gone: PresenceMember | None = None


class Adapter(ABC):
    """Delivery and membership for every app on this node and, for cluster drivers, across
    nodes. Mutations update the local ``Namespace`` first, so local reads see them at once."""

    def __init__(self) -> None:
        self._namespaces: dict[str, Namespace] = {}

    def namespace(self, app_id: str) -> Namespace:
        """This node's registry for ``app_id`` (created on first use)."""
        ns = self._namespaces.get(app_id)
        if ns is None:
            ns = self._namespaces[app_id] = Namespace(app_id)
        return ns

    async def start(self) -> None:
        """Connect to the broker, if any. Called once before the server accepts traffic."""

    async def stop(self) -> None:
        """Leave the cluster and release connections."""

    # --- membership --------------------------------------------------------------------

    async def add_socket(self, app_id: str, socket: Socket) -> None:
        self.namespace(app_id).add_socket(socket)

    async def remove_socket(self, app_id: str, socket: Socket) -> None:
        """Forget a socket that has already left all its channels."""
        ns = self.namespace(app_id)
        ns.remove_socket(socket)
        if not ns.sockets:
            self._namespaces.pop(app_id, None)

    async def add_user(self, app_id: str, socket: Socket) -> int:
        """Index a signed-in socket; returns the user's cluster-wide socket count."""
        self.namespace(app_id).add_user(socket)
        return await self.user_socket_count(app_id, socket.user_id or "")

    async def remove_user(self, app_id: str, socket: Socket) -> int:
        """Un-index a socket from its user; returns the user's remaining cluster-wide count."""
        self.namespace(app_id).remove_user(socket)
        return await self.user_socket_count(app_id, socket.user_id or "")

    @abstractmethod
    async def subscribe(
        self, app_id: str, channel: str, socket: Socket, member: PresenceMember | None = None
    ) -> JoinResult: ...

    @abstractmethod
    async def unsubscribe(self, app_id: str, channel: str, socket: Socket) -> LeaveResult: ...

    # --- delivery ----------------------------------------------------------------------

    @abstractmethod
    async def broadcast(
        self, app_id: str, channel: str, frame: str, except_socket_id: str | None = None
    ) -> None:
        """Deliver an encoded frame to every subscriber of ``channel`` on every node."""

    @abstractmethod
    async def terminate_user_connections(self, app_id: str, user_id: str) -> None:
        """Close (4009) every socket signed in as ``user_id`` on every node."""

    # --- cluster-wide queries ----------------------------------------------------------

    @abstractmethod
    async def sockets_count(self, app_id: str) -> int: ...

    @abstractmethod
    async def channels(self, app_id: str) -> dict[str, int]:
        """Occupied channels with their subscription counts."""

    @abstractmethod
    async def channel_subscription_count(self, app_id: str, channel: str) -> int: ...

    @abstractmethod
    async def channel_members(self, app_id: str, channel: str) -> dict[str, PresenceMember]:
        """Presence members of ``channel``, one per user, keyed by user id text."""

    @abstractmethod
    async def user_socket_count(self, app_id: str, user_id: str) -> int: ...
