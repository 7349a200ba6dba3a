"""The adapter interface: how a node delivers to sockets and answers questions about them.

An adapter owns this node's ``Namespace`` per app and, in a cluster, the only path to the
other nodes. The server core never asks which adapter it has.
"""

from __future__ import annotations

import socket
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from ..core import Namespace, Socket
from ..protocol.frames import PresenceMember

T = TypeVar("T")

RelayListener = Callable[[str, Any], None]
"""Receives a relayed message: the sending node's id and the message."""


@dataclass(frozen=True, slots=True)
class JoinResult:
    """Outcome of a subscribe: ``new`` is False for a repeated subscribe of the same socket;
    ``members`` (presence channels only) is the channel's member list, one per user on every
    node, including the joining member, as of the moment of joining."""

    new: bool
    members: dict[str, PresenceMember] | None = None


@dataclass(frozen=True, slots=True)
class Answer(Generic[T]):
    """A cluster-wide query result. ``missing`` of the ``nodes`` asked (this one included)
    did not answer in time, so a non-zero ``missing`` marks ``value`` as partial."""

    value: T
    nodes: int = 1
    missing: int = 0

    @property
    def complete(self) -> bool:
        return self.missing == 0


class ChannelListener(Protocol):
    """Receives the cluster-wide transitions of channels (webhooks are made of them).

    Each transition is reported on exactly one node, the channel's owner, in the order that
    node saw it: ``channel_occupied`` when the channel's first socket anywhere joined,
    ``channel_vacated`` when its last one left; ``member_added`` when a user's first socket
    joined a presence channel, ``member_removed`` when its last one left. Calls are
    synchronous and must not block.
    """

    def channel_occupied(self, app_id: str, channel: str) -> None: ...

    def channel_vacated(self, app_id: str, channel: str) -> None: ...

    def member_added(self, app_id: str, channel: str, user_id: str) -> None: ...

    def member_removed(self, app_id: str, channel: str, user_id: str) -> None: ...


class AdapterObserver(Protocol):
    """Receives what an adapter does, for metrics. Calls are synchronous, cheap and never
    raise; the default observer ignores everything.

    ``delivered``: ``frame`` was queued on ``count`` (> 0) local sockets of ``channel`` in
    one fan-out (a broadcast, local or from another node, or a presence notice); ``started``
    is the ``time.monotonic()`` at which a broadcast entered the server (None when unknown).
    ``subscribed`` / ``unsubscribed``: a local socket joined (left) ``channel``, ``first``
    (``last``) when it is the channel's only local socket. The cluster adapters also report
    requests to other nodes: ``request_sent`` when one is published, ``response_received``
    for each answer to it, ``request_done`` when it ends (``seconds`` it took, None if it
    was never sent because the broker is down; ``complete`` when every node answered),
    ``request_received`` for each request of another node, and ``reconnected`` when the
    connection to the broker is back after it was lost.
    """

    def delivered(
        self, app_id: str, channel: str, frame: str, count: int, started: float | None
    ) -> None: ...

    def subscribed(self, app_id: str, channel: str, first: bool) -> None: ...

    def unsubscribed(self, app_id: str, channel: str, last: bool) -> None: ...

    def request_sent(self, app_id: str) -> None: ...

    def request_received(self, app_id: str) -> None: ...

    def response_received(self, app_id: str) -> None: ...

    def request_done(self, app_id: str, seconds: float | None, complete: bool) -> None: ...

    def reconnected(self, driver: str) -> None: ...


class _Unobserved:
    """The default ``AdapterObserver``: nothing is reported."""

    def delivered(
        self, app_id: str, channel: str, frame: str, count: int, started: float | None
    ) -> None:
        pass

    def subscribed(self, app_id: str, channel: str, first: bool) -> None:
        pass

    def unsubscribed(self, app_id: str, channel: str, last: bool) -> None:
        pass

    def request_sent(self, app_id: str) -> None:
        pass

    def request_received(self, app_id: str) -> None:
        pass

    def response_received(self, app_id: str) -> None:
        pass

    def request_done(self, app_id: str, seconds: float | None, complete: bool) -> None:
        pass

    def reconnected(self, driver: str) -> None:
        pass


class Adapter(ABC):
    """Delivery and membership for every app on this node and, for cluster drivers, across
    nodes.

    Mutations update the local ``Namespace`` at once, so local reads see them. Presence
    transitions belong to the adapter: when a user's first socket joins a presence channel
    anywhere in the cluster, every node sends ``pusher_internal:member_added`` to its own
    subscribers of that channel (not to the joining socket), and ``member_removed`` when the
    user's last socket leaves; likewise watchers of a user get ``online`` / ``offline``
    watchlist events when the user's first socket signs in or last one signs out.
    ``subscribe`` does not suspend between joining and returning, so the caller can send
    ``subscription_succeeded`` with ``members`` before any later ``member_added`` reaches
    the socket.

    ``node_id`` names this node (``instance.process_id``; else the host name for one node,
    a random id in a cluster). ``relay`` is a side channel between nodes for tools (the
    console): best effort, in order, never replayed.
    """

    def __init__(self, node_id: str | None = None) -> None:
        self._namespaces: dict[str, Namespace] = {}
        self.node_id = node_id or socket.gethostname()
        self.listener: ChannelListener | None = None
        self.observer: AdapterObserver = _Unobserved()
        self.relay_listener: RelayListener | None = None

    def listen(self, listener: ChannelListener) -> None:
        """Report channel transitions to ``listener`` from now on."""
        self.listener = listener

    def observe(self, observer: AdapterObserver) -> None:
        """Report deliveries, subscriptions and cluster requests to ``observer`` (metrics)."""
        self.observer = observer

    def listen_relay(self, listener: RelayListener) -> None:
        """Hand the messages other nodes ``relay`` to ``listener`` from now on."""
        self.relay_listener = listener

    def relay(self, message: Any) -> None:
        """Send ``message`` (JSON-able) to the relay listener of every other node, without
        waiting; dropped while the broker is unreachable. Nothing to do with one node."""

    def namespace(self, app_id: str) -> Namespace:
        """This node's registry for ``app_id`` (created on first use)."""
        ns = self._namespaces.get(app_id)
        if ns is None:
            ns = self._namespaces[app_id] = Namespace(app_id)
        return ns

    def _release(self, ns: Namespace) -> None:
        if ns.is_empty() and self._namespaces.get(ns.app_id) is ns:
            del self._namespaces[ns.app_id]

    async def start(self) -> None:
        """Connect to the broker, if any. Called once before the server accepts traffic."""

    async def leave(self, timeout: float = 1.0) -> None:
        """Tell the other nodes this one is going (graceful shutdown), waiting at most
        ``timeout`` seconds for the word to go out: they drop its sockets, members and
        channels at once and stop asking it. Its own changes are no longer replicated nor
        reported to the listener (the others report what its leaving changed), while
        broadcasts and queries keep working until :meth:`stop`. Called at most once, before
        ``stop``; a no-op for one node."""

    async def stop(self) -> None:
        """Leave the cluster (if :meth:`leave` was not called) and release connections."""

    @property
    def degraded(self) -> bool:
        """True while this node cannot reach the other nodes (its broker is down)."""
        return False

    @property
    def node_count(self) -> int:
        """Nodes known alive, this one included."""
        return 1

    @property
    def dropped_messages(self) -> int:
        """Messages for other nodes dropped since start-up (a queue overflow in an outage)."""
        return 0

    # --- membership --------------------------------------------------------------------

    @abstractmethod
    async def add_socket(self, app_id: str, socket: Socket) -> None: ...

    @abstractmethod
    async def remove_socket(self, app_id: str, socket: Socket) -> None:
        """Forget a socket that has already left its channels and signed out."""

    @abstractmethod
    async def sign_in(self, app_id: str, socket: Socket) -> None:
        """Index a socket whose ``user_id`` was just set."""

    @abstractmethod
    async def sign_out(self, app_id: str, socket: Socket) -> None:
        """Un-index a signed-in socket (before its ``user_id`` is cleared)."""

    @abstractmethod
    async def subscribe(
        self, app_id: str, channel: str, socket: Socket, member: PresenceMember | None = None
    ) -> JoinResult:
        """Subscribe ``socket``; ``member`` is given for presence channels."""

    @abstractmethod
    async def unsubscribe(self, app_id: str, channel: str, socket: Socket) -> bool:
        """Unsubscribe ``socket``; False if it was not subscribed."""

    # --- delivery ----------------------------------------------------------------------

    @abstractmethod
    async def broadcast(
        self, app_id: str, channel: str, frame: str, except_socket_id: str | None = None,
        started: float | None = None,
    ) -> None:  # fmt: skip
        """Deliver an encoded frame to every subscriber of ``channel`` on every node.
        ``started``: the ``time.monotonic()`` at which the event entered the server, for
        the observer's broadcast latency."""

    @abstractmethod
    async def terminate_user_connections(self, app_id: str, user_id: str) -> None:
        """Close (4009) every socket signed in as ``user_id`` on every node."""

    # --- queries -----------------------------------------------------------------------

    @abstractmethod
    async def sockets_count(self, app_id: str) -> Answer[int]:
        """Open sockets of the app on every node."""

    @abstractmethod
    async def channels(self, app_id: str) -> Answer[dict[str, int]]:
        """Occupied channels with their subscription counts on every node."""

    @abstractmethod
    async def channel_subscription_count(self, app_id: str, channel: str) -> Answer[int]: ...

    @abstractmethod
    async def channel_members(self, app_id: str, channel: str) -> dict[str, PresenceMember]:
        """Presence members of ``channel``, one per user, keyed by user id text."""

    @abstractmethod
    async def user_socket_count(self, app_id: str, user_id: str) -> int:
        """Sockets signed in as ``user_id`` on every node."""

    def occupied(self, app_id: str, channel: str) -> bool:
        """Whether ``channel`` has a socket on any node, as this node knows now (no I/O)."""
        ns = self._namespaces.get(app_id)
        return ns is not None and (channel in ns.channels or channel in ns.remote_channels)

    def has_member(self, app_id: str, channel: str, user_id: str) -> bool:
        """Whether ``user_id`` is in presence channel ``channel`` on any node, as this node
        knows now (no I/O)."""
        ns = self._namespaces.get(app_id)
        return ns is not None and ns.user_count_in(channel, user_id) > 0
