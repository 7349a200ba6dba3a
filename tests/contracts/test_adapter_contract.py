"""Adapter contract (``sockudo_py.adapters.base.Adapter``), run against every adapter driver
on one node. Sockets are fakes that record what the adapter does to them."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from sockudo_py.adapters import Adapter
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
        await adapter.add_user(app_id, socket)
    return socket


def frame(n: int) -> str:
    return json.dumps({"event": "e", "channel": "news", "data": str(n)})


# --- subscribe / unsubscribe ---------------------------------------------------------------


async def test_subscribe_join_result(adapter: Adapter, app_a: str) -> None:
    s1, s2 = await connect(adapter, app_a), await connect(adapter, app_a)
    first = await adapter.subscribe(app_a, "news", s1)
    assert (first.new, first.subscription_count, first.first_for_user) == (True, 1, False)
    second = await adapter.subscribe(app_a, "news", s2)
    assert (second.new, second.subscription_count) == (True, 2)
    again = await adapter.subscribe(app_a, "news", s1)
    assert (again.new, again.subscription_count) == (False, 2)


async def test_presence_first_for_user(adapter: Adapter, app_a: str) -> None:
    u1a, u1b, u2 = [await connect(adapter, app_a) for _ in range(3)]
    m1, m2 = PresenceMember("u1", {"name": "One"}), PresenceMember("u2")
    assert (await adapter.subscribe(app_a, "presence-room", u1a, m1)).first_for_user is True
    second = await adapter.subscribe(app_a, "presence-room", u1b, m1)
    assert (second.new, second.first_for_user, second.subscription_count) == (True, False, 2)
    assert (await adapter.subscribe(app_a, "presence-room", u2, m2)).first_for_user is True
    repeat = await adapter.subscribe(app_a, "presence-room", u1a, m1)
    assert (repeat.new, repeat.first_for_user) == (False, False)


async def test_unsubscribe_member_gone_only_for_last_socket(adapter: Adapter, app_a: str) -> None:
    u1a, u1b, u2 = [await connect(adapter, app_a) for _ in range(3)]
    m1, m2 = PresenceMember("u1", {"name": "One"}), PresenceMember(7)
    for socket, member in ((u1a, m1), (u1b, m1), (u2, m2)):
        await adapter.subscribe(app_a, "presence-room", socket, member)

    left = await adapter.unsubscribe(app_a, "presence-room", u1a)
    assert (left.left, left.subscription_count, left.member_gone) == (True, 2, None)
    left = await adapter.unsubscribe(app_a, "presence-room", u1b)
    assert (left.left, left.subscription_count) == (True, 1)
    assert left.member_gone is not None
    assert (left.member_gone.user_id, left.member_gone.user_info) == ("u1", {"name": "One"})
    left = await adapter.unsubscribe(app_a, "presence-room", u2)
    assert left.subscription_count == 0
    assert left.member_gone is not None and left.member_gone.user_id == 7


async def test_unsubscribe_non_member(adapter: Adapter, app_a: str) -> None:
    inside, outside = await connect(adapter, app_a), await connect(adapter, app_a)
    await adapter.subscribe(app_a, "news", inside)
    await adapter.subscribe(app_a, "presence-room", inside, PresenceMember("u1"))
    for channel, count in (("news", 1), ("presence-room", 1), ("nowhere", 0)):
        result = await adapter.unsubscribe(app_a, channel, outside)
        assert (result.left, result.subscription_count, result.member_gone) == (False, count, None)
    await adapter.unsubscribe(app_a, "news", inside)
    again = await adapter.unsubscribe(app_a, "news", inside)
    assert (again.left, again.subscription_count) == (False, 0)


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

    assert await adapter.channels(app_a) == {"news": 2, "presence-room": 1}
    assert await adapter.channels(app_b) == {"elsewhere": 1}
    assert await adapter.channel_subscription_count(app_a, "news") == 2
    assert await adapter.channel_subscription_count(app_a, "elsewhere") == 0
    assert await adapter.channel_subscription_count(app_b, "news") == 0

    await adapter.unsubscribe(app_a, "news", s1)
    await adapter.unsubscribe(app_a, "presence-room", s3)
    assert await adapter.channels(app_a) == {"news": 1}
    assert await adapter.channel_subscription_count(app_a, "presence-room") == 0
    assert await adapter.channels(f"{app_a}-unknown") == {}


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
    assert await adapter.sockets_count(app_a) == 0
    in_a = [await connect(adapter, app_a) for _ in range(3)]
    await connect(adapter, app_b)
    assert await adapter.sockets_count(app_a) == 3
    assert await adapter.sockets_count(app_b) == 1
    await adapter.remove_socket(app_a, in_a[0])
    assert await adapter.sockets_count(app_a) == 2
    assert await adapter.sockets_count(app_b) == 1


async def test_users_counts(adapter: Adapter, app_a: str, app_b: str) -> None:
    a1, a2 = await connect(adapter, app_a), await connect(adapter, app_a)
    b1 = await connect(adapter, app_b)
    for socket in (a1, a2, b1):
        socket.user_id = "u1"
    assert await adapter.add_user(app_a, a1) == 1
    assert await adapter.add_user(app_a, a2) == 2
    assert await adapter.add_user(app_b, b1) == 1  # same user id, other app
    assert await adapter.user_socket_count(app_a, "u1") == 2
    assert await adapter.user_socket_count(app_a, "u2") == 0

    assert await adapter.remove_user(app_a, a1) == 1
    assert await adapter.user_socket_count(app_a, "u1") == 1
    assert await adapter.remove_user(app_a, a2) == 0
    assert await adapter.user_socket_count(app_a, "u1") == 0
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
    await adapter.remove_user(app_a, socket)
    await adapter.remove_socket(app_a, socket)

    assert await adapter.channels(app_a) == {}
    assert await adapter.sockets_count(app_a) == 0
    assert await adapter.user_socket_count(app_a, "u1") == 0
    assert await adapter.channel_subscription_count(app_a, "news") == 0
    assert await adapter.channel_members(app_a, "presence-room") == {}
    await adapter.broadcast(app_a, "news", frame(1))
    assert socket.events == []
