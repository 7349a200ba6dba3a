"""Adapter contract (``sockudo_py.adapters.base.Adapter``), run against every adapter driver
on one node. Sockets are fakes that record what the adapter does to them. The cluster drivers
also run ``test_cluster_contract.py``, with several nodes."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from sockudo_py.adapters import Adapter, JoinResult
from sockudo_py.protocol.frames import PresenceMember

_ids = itertools.count(1)


class FakeSocket:
    """A ``core.Socket`` that records ``("send", frame)`` and ``("close", code, reason)``."""

    def __init__(self, user_id: str | None = None) -> None:
        self.socket_id = f"{next(_ids)}.{id(self) % 1_000_000}"
        self.user_id = user_id
        self.events: list[tuple[Any, ...]] = []

    def send(self, frame: str) -> None:
        self.events.append(("send", frame))

    def push(self, frame: str) -> bool:
        self.send(frame)
        return True

    def close(self, code: int, reason: str) -> None:
        self.events.append(("close", code, reason))

    @property
    def sent(self) -> list[str]:
        return [event[1] for event in self.events if event[0] == "send"]


@pytest.fixture
def app_a(uid: str) -> str:
    return f"{uid}-a"


@pytest.fixture
def app_b(uid: str) -> str:
    return f"{uid}-b"


async def connect(adapter: Adapter, app_id: str, user_id: str | None = None) -> FakeSocket:
    """A socket added to ``app_id`` (and signed in as ``user_id`` if given)."""
    socket = FakeSocket(user_id)
    await adapter.add_socket(app_id, socket)
    if user_id is not None:
        await adapter.sign_in(app_id, socket)
    return socket


def events_of(socket: FakeSocket, name: str) -> list[dict[str, Any]]:
    """The decoded data of each frame ``name`` the socket got."""
    found = []
    for sent in socket.sent:
        decoded = json.loads(sent)
        if decoded["event"] == name:
            data = decoded.get("data")
            found.append(json.loads(data) if isinstance(data, str) else data)
    return found


def frame(n: int) -> str:
    return json.dumps({"event": "e", "channel": "news", "data": str(n)})


# --- subscribe / unsubscribe ---------------------------------------------------------------


async def test_subscribe_is_idempotent(adapter: Adapter, app_a: str) -> None:
    s1, s2 = await connect(adapter, app_a), await connect(adapter, app_a)
    assert await adapter.subscribe(app_a, "news", s1) == JoinResult(True)
    assert await adapter.subscribe(app_a, "news", s2) == JoinResult(True)
    assert await adapter.subscribe(app_a, "news", s1) == JoinResult(False)
    assert (await adapter.channel_subscription_count(app_a, "news")).value == 2


async def test_presence_join_members_and_member_added(adapter: Adapter, app_a: str) -> None:
    u1a, u1b, u2 = [await connect(adapter, app_a) for _ in range(3)]
    m1, m2 = PresenceMember("u1", {"name": "One"}), PresenceMember(2)
    first = await adapter.subscribe(app_a, "presence-room", u1a, m1)
    assert first.new and first.members == {"u1": m1}
    second = await adapter.subscribe(app_a, "presence-room", u1b, m1)
    assert second.new and set(second.members or {}) == {"u1"}
    third = await adapter.subscribe(app_a, "presence-room", u2, m2)
    assert set(third.members or {}) == {"u1", "2"}
    repeat = await adapter.subscribe(app_a, "presence-room", u1a, m1)
    assert not repeat.new and set(repeat.members or {}) == {"u1", "2"}

    # member_added once per user, to the others, never to the joining socket
    assert events_of(u1a, "pusher_internal:member_added") == [{"user_id": 2, "user_info": {}}]
    assert events_of(u1b, "pusher_internal:member_added") == [{"user_id": 2, "user_info": {}}]
    assert events_of(u2, "pusher_internal:member_added") == []


async def test_member_removed_only_for_last_socket(adapter: Adapter, app_a: str) -> None:
    u1a, u1b, u2 = [await connect(adapter, app_a) for _ in range(3)]
    m1, m2 = PresenceMember("u1", {"name": "One"}), PresenceMember(7)
    for socket, member in ((u1a, m1), (u1b, m1), (u2, m2)):
        await adapter.subscribe(app_a, "presence-room", socket, member)

    assert await adapter.unsubscribe(app_a, "presence-room", u1a) is True
    assert events_of(u2, "pusher_internal:member_removed") == []
    assert await adapter.unsubscribe(app_a, "presence-room", u1b) is True
    assert events_of(u2, "pusher_internal:member_removed") == [{"user_id": "u1"}]
    assert events_of(u1b, "pusher_internal:member_removed") == []  # it had left
    assert await adapter.unsubscribe(app_a, "presence-room", u2) is True
    assert await adapter.channel_members(app_a, "presence-room") == {}


async def test_unsubscribe_non_member(adapter: Adapter, app_a: str) -> None:
    inside, outside = await connect(adapter, app_a), await connect(adapter, app_a)
    await adapter.subscribe(app_a, "news", inside)
    await adapter.subscribe(app_a, "presence-room", inside, PresenceMember("u1"))
    for channel in ("news", "presence-room", "nowhere"):
        assert await adapter.unsubscribe(app_a, channel, outside) is False
    assert set(await adapter.channel_members(app_a, "presence-room")) == {"u1"}
    assert await adapter.unsubscribe(app_a, "news", inside) is True
    assert await adapter.unsubscribe(app_a, "news", inside) is False
    assert inside.sent == []


# --- broadcast -----------------------------------------------------------------------------


async def test_broadcast_reaches_each_subscriber_once(adapter: Adapter, app_a: str) -> None:
    subs = [await connect(adapter, app_a) for _ in range(3)]
    elsewhere, idle = await connect(adapter, app_a), await connect(adapter, app_a)
    for socket in subs:
        await adapter.subscribe(app_a, "news", socket)
    await adapter.subscribe(app_a, "news", subs[0])  # a repeated subscribe adds no copy
    await adapter.subscribe(app_a, "sports", elsewhere)

    await adapter.broadcast(app_a, "news", frame(1))
    assert [s.sent for s in subs] == [[frame(1)]] * 3
    assert elsewhere.sent == [] and idle.sent == []

    await adapter.broadcast(app_a, "news", frame(2), except_socket_id=subs[1].socket_id)
    assert [s.sent for s in subs] == [[frame(1), frame(2)], [frame(1)], [frame(1), frame(2)]]

    await adapter.broadcast(app_a, "empty-channel", frame(3))  # nobody there: no error
    assert elsewhere.sent == [] and idle.sent == []


async def test_broadcast_stays_in_its_app(adapter: Adapter, app_a: str, app_b: str) -> None:
    in_a, in_b = await connect(adapter, app_a), await connect(adapter, app_b)
    for app_id, socket in ((app_a, in_a), (app_b, in_b)):
        await adapter.subscribe(app_id, "news", socket)
        await adapter.subscribe(app_id, "presence-room", socket, PresenceMember("u1"))
    await adapter.broadcast(app_a, "news", frame(1))
    await adapter.broadcast(app_b, "presence-room", frame(2))
    assert in_a.sent == [frame(1)]
    assert in_b.sent == [frame(2)]
    await adapter.broadcast(f"{app_a}-unknown", "news", frame(3))
    assert in_a.sent == [frame(1)] and in_b.sent == [frame(2)]


# --- queries -------------------------------------------------------------------------------


async def test_channels_and_counts(adapter: Adapter, app_a: str, app_b: str) -> None:
    s1, s2, s3 = [await connect(adapter, app_a) for _ in range(3)]
    other = await connect(adapter, app_b)
    await adapter.subscribe(app_a, "news", s1)
    await adapter.subscribe(app_a, "news", s2)
    await adapter.subscribe(app_a, "presence-room", s3, PresenceMember("u3"))
    await adapter.subscribe(app_b, "elsewhere", other)

    channels = await adapter.channels(app_a)
    assert channels.complete and channels.value == {"news": 2, "presence-room": 1}
    assert (await adapter.channels(app_b)).value == {"elsewhere": 1}
    assert (await adapter.channel_subscription_count(app_a, "news")).value == 2
    assert (await adapter.channel_subscription_count(app_a, "elsewhere")).value == 0
    assert (await adapter.channel_subscription_count(app_b, "news")).value == 0

    await adapter.unsubscribe(app_a, "news", s1)
    await adapter.unsubscribe(app_a, "presence-room", s3)
    assert (await adapter.channels(app_a)).value == {"news": 1}
    assert (await adapter.channel_subscription_count(app_a, "presence-room")).value == 0
    assert (await adapter.channels(f"{app_a}-unknown")).value == {}


async def test_channel_members_one_per_user(adapter: Adapter, app_a: str, app_b: str) -> None:
    u1a, u1b, u2, plain = [await connect(adapter, app_a) for _ in range(4)]
    await adapter.subscribe(app_a, "presence-room", u1a, PresenceMember("u1", {"name": "One"}))
    await adapter.subscribe(app_a, "presence-room", u1b, PresenceMember("u1", {"name": "One"}))
    await adapter.subscribe(app_a, "presence-room", u2, PresenceMember(2, {"n": [1, "ü"]}))
    await adapter.subscribe(app_a, "news", plain)
    await adapter.subscribe(
        app_b, "presence-room", await connect(adapter, app_b), PresenceMember("x")
    )

    members = await adapter.channel_members(app_a, "presence-room")
    assert set(members) == {"u1", "2"}
    assert (members["u1"].user_id, members["u1"].user_info) == ("u1", {"name": "One"})
    assert (members["2"].user_id, members["2"].user_info) == (2, {"n": [1, "ü"]})
    assert await adapter.channel_members(app_a, "news") == {}
    assert await adapter.channel_members(app_a, "presence-nobody") == {}

    await adapter.unsubscribe(app_a, "presence-room", u1a)
    assert set(await adapter.channel_members(app_a, "presence-room")) == {"u1", "2"}
    await adapter.unsubscribe(app_a, "presence-room", u1b)
    assert set(await adapter.channel_members(app_a, "presence-room")) == {"2"}


async def test_sockets_count_per_app(adapter: Adapter, app_a: str, app_b: str) -> None:
    assert (await adapter.sockets_count(app_a)).value == 0
    in_a = [await connect(adapter, app_a) for _ in range(3)]
    await connect(adapter, app_b)
    assert (await adapter.sockets_count(app_a)).value == 3
    assert (await adapter.sockets_count(app_b)).value == 1
    await adapter.remove_socket(app_a, in_a[0])
    assert (await adapter.sockets_count(app_a)).value == 2
    assert (await adapter.sockets_count(app_b)).value == 1


async def test_user_counts_and_watchlist_events(adapter: Adapter, app_a: str, app_b: str) -> None:
    watcher = await connect(adapter, app_a)
    adapter.namespace(app_a).watch(watcher, ["u1"])
    a1, a2 = await connect(adapter, app_a, "u1"), await connect(adapter, app_a, "u1")
    await connect(adapter, app_b, "u1")  # same user id, other app
    assert await adapter.user_socket_count(app_a, "u1") == 2
    assert await adapter.user_socket_count(app_b, "u1") == 1
    assert await adapter.user_socket_count(app_a, "u2") == 0
    online = {"events": [{"name": "online", "user_ids": ["u1"]}]}
    assert events_of(watcher, "pusher_internal:watchlist_events") == [online]

    await adapter.sign_out(app_a, a1)
    assert await adapter.user_socket_count(app_a, "u1") == 1
    await adapter.sign_out(app_a, a2)
    assert await adapter.user_socket_count(app_a, "u1") == 0
    offline = {"events": [{"name": "offline", "user_ids": ["u1"]}]}
    assert events_of(watcher, "pusher_internal:watchlist_events") == [online, offline]
    assert await adapter.user_socket_count(app_b, "u1") == 1


async def test_terminate_user_connections(adapter: Adapter, app_a: str, app_b: str) -> None:
    u1a, u1b = await connect(adapter, app_a, "u1"), await connect(adapter, app_a, "u1")
    u2 = await connect(adapter, app_a, "u2")
    u1_elsewhere = await connect(adapter, app_b, "u1")
    anonymous = await connect(adapter, app_a)

    await adapter.terminate_user_connections(app_a, "u1")

    for socket in (u1a, u1b):
        assert [event[0] for event in socket.events] == ["send", "close"]
        error = json.loads(socket.events[0][1])
        assert error["event"] == "pusher:error"
        data = error["data"] if isinstance(error["data"], dict) else json.loads(error["data"])
        assert data["code"] == 4009
        assert socket.events[1][1] == 4009
    assert u2.events == [] and u1_elsewhere.events == [] and anonymous.events == []
    await adapter.terminate_user_connections(app_a, "nobody")  # no error
    await adapter.terminate_user_connections(f"{app_a}-unknown", "u1")


async def test_a_removed_socket_leaves_no_trace(adapter: Adapter, app_a: str) -> None:
    socket = await connect(adapter, app_a, "u1")
    await adapter.subscribe(app_a, "news", socket)
    await adapter.subscribe(app_a, "presence-room", socket, PresenceMember("u1"))
    # the server's goodbye order: leave every channel, sign out, forget the socket
    await adapter.unsubscribe(app_a, "news", socket)
    await adapter.unsubscribe(app_a, "presence-room", socket)
    await adapter.sign_out(app_a, socket)
    await adapter.remove_socket(app_a, socket)

    assert (await adapter.channels(app_a)).value == {}
    assert (await adapter.sockets_count(app_a)).value == 0
    assert await adapter.user_socket_count(app_a, "u1") == 0
    assert (await adapter.channel_subscription_count(app_a, "news")).value == 0
    assert await adapter.channel_members(app_a, "presence-room") == {}
    await adapter.broadcast(app_a, "news", frame(1))
    assert socket.events == []
    assert not adapter.degraded


# --- channel transitions (what webhooks are made of) ----------------------------------------


class Transitions:
    """A ``ChannelListener`` that records ``(what, channel, user_id, node)``; several nodes may
    share one ``log``."""

    def __init__(self, log: list[tuple[str, str, str | None, int]] | None = None,
                 node: int = 0) -> None:  # fmt: skip
        self.log: list[tuple[str, str, str | None, int]] = [] if log is None else log
        self.node = node

    def channel_occupied(self, app_id: str, channel: str) -> None:
        self.log.append(("occupied", channel, None, self.node))

    def channel_vacated(self, app_id: str, channel: str) -> None:
        self.log.append(("vacated", channel, None, self.node))

    def member_added(self, app_id: str, channel: str, user_id: str) -> None:
        self.log.append(("added", channel, user_id, self.node))

    def member_removed(self, app_id: str, channel: str, user_id: str) -> None:
        self.log.append(("removed", channel, user_id, self.node))

    def what(self) -> list[tuple[str, str, str | None]]:
        return [entry[:3] for entry in self.log]


async def test_the_listener_hears_each_transition_once_in_order(
    adapter: Adapter, app_a: str
) -> None:
    heard = Transitions()
    adapter.listen(heard)
    one, two = await connect(adapter, app_a), await connect(adapter, app_a)
    await adapter.subscribe(app_a, "news", one)
    await adapter.subscribe(app_a, "news", two)
    await adapter.subscribe(app_a, "news", two)  # repeated: nothing new
    await adapter.subscribe(app_a, "presence-room", one, PresenceMember("u1", None))
    await adapter.subscribe(app_a, "presence-room", two, PresenceMember("u1", None))
    await adapter.unsubscribe(app_a, "news", one)
    await adapter.unsubscribe(app_a, "presence-room", one)
    assert adapter.occupied(app_a, "news") and adapter.has_member(app_a, "presence-room", "u1")
    assert not adapter.occupied(app_a, "other") and not adapter.has_member(app_a, "news", "u1")
    assert heard.what() == [
        ("occupied", "news", None),
        ("occupied", "presence-room", None),
        ("added", "presence-room", "u1"),
    ]
    await adapter.unsubscribe(app_a, "news", two)
    await adapter.unsubscribe(app_a, "presence-room", two)
    assert heard.what()[3:] == [
        ("vacated", "news", None),
        ("removed", "presence-room", "u1"),
        ("vacated", "presence-room", None),
    ]
    assert not adapter.occupied(app_a, "news")
    assert not adapter.has_member(app_a, "presence-room", "u1")
