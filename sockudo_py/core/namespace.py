"""``Namespace``: one app's sockets, channel subscriptions, presence members and signed-in
users on this node. Pure bookkeeping plus local delivery; no I/O of its own."""

from __future__ import annotations

from typing import Protocol

from ..protocol.frames import PresenceMember


class Socket(Protocol):
    """What the registry needs of a connection: its id, its user and a non-blocking send."""

    socket_id: str
    user_id: str | None

    def send(self, frame: str) -> None:
        """Queue ``frame`` for delivery; never blocks, never raises."""

    def close(self, code: int, reason: str) -> None:
        """Flush what is queued, then close with ``code``."""


class Namespace:
    """The local registry of one app.

    Invariants: a socket is in ``channels[c]`` iff ``c`` is in its subscriptions here; a
    channel with no sockets is removed; ``presence_users[c][user]`` counts the sockets of
    ``user`` in presence channel ``c``, and the user is absent when that count is zero.
    """

    __slots__ = (
        "app_id",
        "channels",
        "presence",
        "presence_users",
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
        self.watchers: dict[str, dict[str, Socket]] = {}

    # --- sockets and users -------------------------------------------------------------

    def add_socket(self, socket: Socket) -> None:
        self.sockets[socket.socket_id] = socket

    def remove_socket(self, socket: Socket) -> None:
        self.sockets.pop(socket.socket_id, None)
        if socket.user_id is not None:
            self.remove_user(socket)

    def add_user(self, socket: Socket) -> int:
        """Index a signed-in socket under its user; returns the user's socket count here."""
        assert socket.user_id is not None
        sockets = self.users.setdefault(socket.user_id, {})
        sockets[socket.socket_id] = socket
        return len(sockets)

    def remove_user(self, socket: Socket) -> int:
        """Drop a socket from its user's index; returns the user's remaining socket count."""
        if socket.user_id is None:
            return 0
        sockets = self.users.get(socket.user_id)
        if sockets is None:
            return 0
        sockets.pop(socket.socket_id, None)
        if not sockets:
            del self.users[socket.user_id]
        return len(sockets)

    def user_sockets(self, user_id: str) -> list[Socket]:
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

    def join(self, channel: str, socket: Socket, member: PresenceMember | None = None) -> bool:
        """Subscribe ``socket``; ``member`` for presence channels. False if already in."""
        sockets = self.channels.setdefault(channel, {})
        if socket.socket_id in sockets:
            return False
        sockets[socket.socket_id] = socket
        if member is not None:
            self.presence.setdefault(channel, {})[socket.socket_id] = member
            users = self.presence_users.setdefault(channel, {})
            users[member.key] = users.get(member.key, 0) + 1
        return True

    def leave(self, channel: str, socket: Socket) -> tuple[bool, PresenceMember | None]:
        """Unsubscribe ``socket``: (was it subscribed, its presence member if any)."""
        sockets = self.channels.get(channel)
        if sockets is None or sockets.pop(socket.socket_id, None) is None:
            return False, None
        if not sockets:
            del self.channels[channel]
        members = self.presence.get(channel)
        member = members.pop(socket.socket_id, None) if members is not None else None
        if member is not None:
            assert members is not None
            if not members:
                del self.presence[channel]
            users = self.presence_users[channel]
            users[member.key] -= 1
            if not users[member.key]:
                del users[member.key]
                if not users:
                    del self.presence_users[channel]
        return True, member

    def subscription_count(self, channel: str) -> int:
        return len(self.channels.get(channel, ()))

    def channel_counts(self) -> dict[str, int]:
        """Every occupied channel with its number of subscribed sockets."""
        return {name: len(sockets) for name, sockets in self.channels.items()}

    def user_count_in(self, channel: str, user_key: str) -> int:
        """How many sockets ``user_key`` has in presence channel ``channel``."""
        return self.presence_users.get(channel, {}).get(user_key, 0)

    def members(self, channel: str) -> dict[str, PresenceMember]:
        """One entry per user in presence channel ``channel`` (the first socket's data)."""
        result: dict[str, PresenceMember] = {}
        for member in self.presence.get(channel, {}).values():
            result.setdefault(member.key, member)
        return result

    def deliver(self, channel: str, frame: str, except_socket_id: str | None = None) -> int:
        """Queue ``frame`` on every socket of ``channel`` but one; returns how many got it."""
        sockets = self.channels.get(channel)
        if not sockets:
            return 0
        count = 0
        for socket_id, socket in sockets.items():
            if socket_id != except_socket_id:
                socket.send(frame)
                count += 1
        return count
