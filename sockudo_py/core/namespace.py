"""``Namespace``: one app's sockets, channel subscriptions, presence members and signed-in
users on this node. Pure bookkeeping plus local delivery; no I/O of its own."""

from __future__ import annotations

from typing import Protocol

from ..protocol.frames import PresenceMember


class Socket(Protocol):
    """What the registry needs of a connection: its id, its user and a non-blocking send.

    ``push`` is the fan-out's send: the caller counts what it delivered once for all
    sockets (metrics); ``send`` is for a frame meant for this socket alone, and the socket
    counts it itself.
    """

    socket_id: str
    user_id: str | None

    def send(self, frame: str) -> None:
        """Queue ``frame`` for delivery; never blocks, never raises."""

    def push(self, frame: str) -> bool:
        """Queue ``frame`` as part of a fan-out, uncounted; False if it was not queued (the
        socket is closing, or its buffer is full). Never blocks, never raises."""

    def close(self, code: int, reason: str) -> None:
        """Flush what is queued, then close with ``code``."""


class Namespace:
    """The registry of one app on this node.

    Sockets, channel subscriptions, signed-in users and watchers are this node's. Presence
    members and signed-in user counts cover the whole cluster: a clustered adapter feeds in
    the other nodes' members (``add_member``/``remove_member`` with their socket ids) and user
    counts (``count_user``), so presence transitions and member lists are answered here.

    ``remote_channels[c]`` counts the other nodes with sockets in ``c``
    (``count_remote_channel``, fed in likewise), so occupancy is known cluster-wide.

    Invariants: a socket is in ``channels[c]`` iff ``c`` is in its subscriptions here; a
    channel with no sockets is removed (from ``remote_channels`` when no other node has one);
    ``presence_users[c][user]`` counts the sockets of ``user`` in presence channel ``c`` on
    every node, and the user is absent when that count is zero; ``online[user]`` counts the
    user's signed-in sockets on every node, likewise.
    """

    __slots__ = (
        "app_id",
        "channels",
        "online",
        "presence",
        "presence_users",
        "remote_channels",
        "sockets",
        "users",
        "watchers",
    )

    def __init__(self, app_id: str) -> None:
        self.app_id = app_id
        self.sockets: dict[str, Socket] = {}
        self.channels: dict[str, dict[str, Socket]] = {}
        self.presence: dict[str, dict[str, PresenceMember]] = {}
        self.presence_users: dict[str, dict[str, int]] = {}
        self.users: dict[str, dict[str, Socket]] = {}
        self.online: dict[str, int] = {}
        self.watchers: dict[str, dict[str, Socket]] = {}
        self.remote_channels: dict[str, int] = {}

    def is_empty(self) -> bool:
        """Nothing left here: no local socket and no member, user or channel of another
        node."""
        return not (self.sockets or self.presence or self.online or self.remote_channels)

    # --- sockets and users -------------------------------------------------------------

    def add_socket(self, socket: Socket) -> None:
        self.sockets[socket.socket_id] = socket

    def remove_socket(self, socket: Socket) -> None:
        """Forget a socket that has left its channels and signed out."""
        self.sockets.pop(socket.socket_id, None)

    def add_user(self, socket: Socket) -> bool:
        """Index a signed-in socket under its user; True when the user was offline."""
        assert socket.user_id is not None
        sockets = self.users.setdefault(socket.user_id, {})
        if socket.socket_id in sockets:
            return False
        sockets[socket.socket_id] = socket
        return self.count_user(socket.user_id, 1)

    def remove_user(self, socket: Socket) -> bool:
        """Drop a socket from its user's index; True when the user is now offline."""
        if socket.user_id is None:
            return False
        sockets = self.users.get(socket.user_id)
        if sockets is None or sockets.pop(socket.socket_id, None) is None:
            return False
        if not sockets:
            del self.users[socket.user_id]
        return self.count_user(socket.user_id, -1)

    def count_user(self, user_id: str, delta: int) -> bool:
        """Add ``delta`` to the user's cluster-wide socket count; True when it went from zero
        to positive or back to zero (the user came online or went offline)."""
        return _count(self.online, user_id, delta)

    def user_sockets(self, user_id: str) -> list[Socket]:
        """This node's sockets signed in as ``user_id``."""
        return list(self.users.get(user_id, {}).values())

    def watch(self, socket: Socket, user_ids: list[str]) -> None:
        """Register ``socket`` as a watcher of each of ``user_ids``."""
        for user_id in user_ids:
            self.watchers.setdefault(user_id, {})[socket.socket_id] = socket

    def unwatch(self, socket: Socket, user_ids: list[str]) -> None:
        for user_id in user_ids:
            watchers = self.watchers.get(user_id)
            if watchers is not None:
                watchers.pop(socket.socket_id, None)
                if not watchers:
                    del self.watchers[user_id]

    def notify_watchers(self, user_id: str, frame: str) -> None:
        for socket in self.watchers.get(user_id, {}).values():
            socket.send(frame)

    # --- channels ----------------------------------------------------------------------

    def join(self, channel: str, socket: Socket) -> bool:
        """Subscribe a local socket; False if it was already in."""
        sockets = self.channels.setdefault(channel, {})
        if socket.socket_id in sockets:
            return False
        sockets[socket.socket_id] = socket
        return True

    def leave(self, channel: str, socket: Socket) -> bool:
        """Unsubscribe a local socket; False if it was not in."""
        sockets = self.channels.get(channel)
        if sockets is None or sockets.pop(socket.socket_id, None) is None:
            return False
        if not sockets:
            del self.channels[channel]
        return True

    def add_member(self, channel: str, socket_id: str, member: PresenceMember) -> bool:
        """Record the presence member of socket ``socket_id`` (of any node) in ``channel``;
        True when its user was not in the channel before."""
        members = self.presence.setdefault(channel, {})
        if socket_id in members:
            return False
        members[socket_id] = member
        users = self.presence_users.setdefault(channel, {})
        users[member.key] = users.get(member.key, 0) + 1
        return users[member.key] == 1

    def remove_member(self, channel: str, socket_id: str) -> PresenceMember | None:
        """Forget the member of ``socket_id`` in ``channel``; the member if its user has no
        socket left in the channel, else None."""
        members = self.presence.get(channel)
        member = members.pop(socket_id, None) if members is not None else None
        if member is None:
            return None
        assert members is not None
        if not members:
            del self.presence[channel]
        users = self.presence_users[channel]
        users[member.key] -= 1
        if users[member.key]:
            return None
        del users[member.key]
        if not users:
            del self.presence_users[channel]
        return member

    def count_remote_channel(self, channel: str, delta: int) -> bool:
        """Add ``delta`` to the number of other nodes with sockets in ``channel``; True when
        that crossed zero and this node has no socket there either (the channel became
        occupied or vacated cluster-wide)."""
        return _count(self.remote_channels, channel, delta) and channel not in self.channels

    def subscription_count(self, channel: str) -> int:
        """Local sockets subscribed to ``channel``."""
        return len(self.channels.get(channel, ()))

    def channel_counts(self) -> dict[str, int]:
        """Every locally occupied channel with its number of local sockets."""
        return {name: len(sockets) for name, sockets in self.channels.items()}

    def user_count_in(self, channel: str, user_key: str) -> int:
        """How many sockets (on every node) ``user_key`` has in presence channel ``channel``."""
        return self.presence_users.get(channel, {}).get(user_key, 0)

    def members(self, channel: str) -> dict[str, PresenceMember]:
        """One entry per user in presence channel ``channel`` (the first socket's data)."""
        result: dict[str, PresenceMember] = {}
        for member in self.presence.get(channel, {}).values():
            result.setdefault(member.key, member)
        return result

    def deliver(self, channel: str, frame: str, except_socket_id: str | None = None) -> int:
        """Queue ``frame`` on every local socket of ``channel`` but one; returns on how many
        it was queued."""
        sockets = self.channels.get(channel)
        if not sockets:
            return 0
        count = 0
        for socket_id, socket in sockets.items():
            if socket_id != except_socket_id and socket.push(frame):
                count += 1
        return count


def _count(counts: dict[str, int], key: str, delta: int) -> bool:
    """Add ``delta`` to ``counts[key]`` (absent at zero, never negative); True when it went
    from zero to positive or back to zero."""
    before = counts.get(key, 0)
    after = max(before + delta, 0)
    if after:
        counts[key] = after
    else:
        counts.pop(key, None)
    return (before == 0) != (after == 0)
