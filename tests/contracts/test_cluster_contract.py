"""Cluster contract: several nodes of one cluster adapter driver (redis, redis-cluster, nats)
in this process, sharing the real broker. Whatever works on one node works the same on N;
presence transitions reach each subscriber exactly once; dead nodes leave no ghosts.

Replication is asynchronous, so assertions wait (bounded) for the expected state and then
settle briefly before checking that nothing arrived twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from conftest import ClusterFactory
from test_adapter_contract import Transitions, connect, events_of, frame

from sockudo_py.adapters import Adapter
from sockudo_py.adapters.horizontal import HorizontalAdapter
from sockudo_py.protocol.frames import PresenceMember

SETTLE = 0.2
ADDED, REMOVED = "pusher_internal:member_added", "pusher_internal:member_removed"
WATCHLIST = "pusher_internal:watchlist_events"


async def until(check: Callable[[], Any], timeout: float = 5.0) -> None:
    """Wait until ``check()`` is truthy (an assertion error names what never happened)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout}s: {check.__doc__ or check}")
        await asyncio.sleep(0.01)


async def settled() -> None:
    await asyncio.sleep(SETTLE)


async def members_everywhere(nodes: list[Adapter], app: str, channel: str, users: set[str]) -> None:
    async def ok() -> bool:
        return all([set(await n.channel_members(app, channel)) == users for n in nodes])

    deadline = time.monotonic() + 5
    while not await ok():
        if time.monotonic() > deadline:
            views = [set(await n.channel_members(app, channel)) for n in nodes]
            raise AssertionError(f"members never became {users}: {views}")
        await asyncio.sleep(0.01)


def crash(node: Adapter) -> None:
    """Stop ``node`` the way SIGKILL would: no goodbye, no unsubscribes, just silence."""
    assert isinstance(node, HorizontalAdapter)
    for task in node._tasks:
        task.cancel()
    node._tasks = []
    asyncio.get_running_loop().create_task(node.transport.close())
    node._stopping = True


# --- delivery ----------------------------------------------------------------------------


async def test_broadcast_reaches_every_node_once(cluster: ClusterFactory, uid: str) -> None:
    a, b, c = await cluster(3)
    subs = [await connect(node, uid) for node in (a, b, b, c)]
    for socket, node in zip(subs, (a, b, b, c), strict=True):
        await node.subscribe(uid, "news", socket)
    elsewhere = await connect(c, uid)
    await c.subscribe(uid, "sports", elsewhere)

    await a.broadcast(uid, "news", frame(1))
    await b.broadcast(uid, "news", frame(2), except_socket_id=subs[3].socket_id)
    await until(lambda: all(len(s.sent) == (2 if s is not subs[3] else 1) for s in subs))
    await settled()
    # two publishers on two nodes: each gets both once, in either order
    assert [sorted(s.sent) for s in subs[:3]] == [[frame(1), frame(2)]] * 3
    assert subs[3].sent == [frame(1)]
    assert elsewhere.sent == []


async def test_terminate_and_user_counts_across_nodes(cluster: ClusterFactory, uid: str) -> None:
    a, b = await cluster(2)
    watcher = await connect(a, uid)
    a.namespace(uid).watch(watcher, ["u1"])
    on_b = [await connect(b, uid, "u1"), await connect(b, uid, "u1")]
    bystander = await connect(b, uid, "u2")
    await until(lambda: a.namespace(uid).online.get("u1") == 2)
    assert await a.user_socket_count(uid, "u1") == 2
    online = {"events": [{"name": "online", "user_ids": ["u1"]}]}
    await settled()
    assert events_of(watcher, WATCHLIST) == [online]

    await a.terminate_user_connections(uid, "u1")
    await until(lambda: all(e[:2] == ("close", 4009) for s in on_b for e in s.events[-1:]))
    assert bystander.events == []
    for socket in on_b:  # what the server does when the sockets close
        await b.sign_out(uid, socket)
    offline = {"events": [{"name": "offline", "user_ids": ["u1"]}]}
    await until(lambda: len(events_of(watcher, WATCHLIST)) == 2)
    await settled()
    assert events_of(watcher, WATCHLIST) == [online, offline]
    assert await a.user_socket_count(uid, "u1") == 0


# --- presence ------------------------------------------------------------------------------


async def test_presence_is_cluster_wide(cluster: ClusterFactory, uid: str) -> None:
    a, b, c = await cluster(3)
    observers = [await connect(node, uid) for node in (a, b, c)]
    for socket, node in zip(observers, (a, b, c), strict=True):
        await node.subscribe(uid, "presence-room", socket, PresenceMember(f"obs-{id(node)}"))
    names = {f"obs-{id(n)}" for n in (a, b, c)}
    await members_everywhere([a, b, c], uid, "presence-room", names)

    # one user, two tabs on two nodes: one member_added, member_removed after the last tab
    tab_a, tab_b = await connect(a, uid), await connect(b, uid)
    joined = await a.subscribe(uid, "presence-room", tab_a, PresenceMember("u1", {"n": 1}))
    assert set(joined.members or {}) == names | {"u1"}
    await members_everywhere([a, b, c], uid, "presence-room", names | {"u1"})
    second = await b.subscribe(uid, "presence-room", tab_b, PresenceMember("u1", {"n": 1}))
    assert set(second.members or {}) == names | {"u1"}
    await settled()
    for socket in observers:
        added = [e for e in events_of(socket, ADDED) if e["user_id"] == "u1"]
        assert added == [{"user_id": "u1", "user_info": {"n": 1}}]

    await a.unsubscribe(uid, "presence-room", tab_a)
    await settled()
    assert all(events_of(s, REMOVED) == [] for s in observers)
    await b.unsubscribe(uid, "presence-room", tab_b)
    await until(lambda: all(events_of(s, REMOVED) for s in observers))
    await settled()
    assert all(events_of(s, REMOVED) == [{"user_id": "u1"}] for s in observers)
    await members_everywhere([a, b, c], uid, "presence-room", names)


async def test_simultaneous_tabs_give_one_transition_each(
    cluster: ClusterFactory, uid: str
) -> None:
    """Two tabs of one user join (and later leave) on two nodes at the same moment: every
    observer still sees one member_added and one member_removed."""
    a, b, c = await cluster(3)
    observers = [await connect(node, uid) for node in (a, b, c)]
    for socket, node in zip(observers, (a, b, c), strict=True):
        await node.subscribe(uid, "presence-room", socket, PresenceMember(f"o{id(socket)}"))
    await until(lambda: all(len(n.namespace(uid).members("presence-room")) == 3 for n in (a, b)))
    tab_a, tab_b = await connect(a, uid), await connect(b, uid)
    member = PresenceMember("u1")
    await asyncio.gather(
        a.subscribe(uid, "presence-room", tab_a, member),
        b.subscribe(uid, "presence-room", tab_b, member),
    )
    await until(lambda: all(n.namespace(uid).user_count_in("presence-room", "u1") == 2
                            for n in (a, b, c)))  # fmt: skip
    await asyncio.gather(
        a.unsubscribe(uid, "presence-room", tab_a),
        b.unsubscribe(uid, "presence-room", tab_b),
    )
    await until(lambda: all(events_of(s, REMOVED) for s in observers))
    await settled()
    for socket in observers:
        assert [e["user_id"] for e in events_of(socket, ADDED) if e["user_id"] == "u1"] == ["u1"]
        assert events_of(socket, REMOVED) == [{"user_id": "u1"}]


async def test_a_new_node_learns_the_cluster_state(cluster: ClusterFactory, uid: str) -> None:
    (a,) = await cluster(1)
    there = await connect(a, uid, "u1")
    await a.subscribe(uid, "presence-room", there, PresenceMember("u1", {"name": "One"}))
    (late,) = await cluster(1)  # start() returns after the others told it their state
    members = await late.channel_members(uid, "presence-room")
    assert {k: v.user_info for k, v in members.items()} == {"u1": {"name": "One"}}
    assert await late.user_socket_count(uid, "u1") == 1
    newcomer = await connect(late, uid)
    joined = await late.subscribe(uid, "presence-room", newcomer, PresenceMember("u2"))
    assert set(joined.members or {}) == {"u1", "u2"}


# --- queries -------------------------------------------------------------------------------


async def test_queries_merge_every_node(cluster: ClusterFactory, uid: str) -> None:
    a, b, c = await cluster(3)
    for node, count in ((a, 1), (b, 2), (c, 3)):
        for _ in range(count):
            await node.subscribe(uid, "news", await connect(node, uid))
    await c.subscribe(uid, "presence-room", await connect(c, uid), PresenceMember("u"))
    await connect(b, f"{uid}-other")

    for node in (a, b, c):
        channels = await node.channels(uid)
        assert (channels.value, channels.nodes, channels.missing) == (
            {"news": 6, "presence-room": 1},
            3,
            0,
        )
        count = await node.channel_subscription_count(uid, "news")
        assert (count.value, count.complete) == (6, True)
        sockets = await node.sockets_count(uid)
        assert (sockets.value, sockets.complete) == (7, True)
        assert (await node.sockets_count(f"{uid}-other")).value == 1


# --- failures ----------------------------------------------------------------------------


async def test_a_crashed_node_leaves_no_ghosts(cluster: ClusterFactory, uid: str) -> None:
    a, b, doomed = await cluster(3)
    observer = await connect(a, uid)
    await a.subscribe(uid, "presence-room", observer, PresenceMember("watcher"))
    await a.subscribe(uid, "news", await connect(a, uid))
    for user in ("u1", "u2"):
        ghost = await connect(doomed, uid, user)
        await doomed.subscribe(uid, "presence-room", ghost, PresenceMember(user))
        await doomed.subscribe(uid, "news", ghost)
    both = await connect(b, uid)
    await b.subscribe(uid, "presence-room", both, PresenceMember("u2"))  # u2 is on b too
    await members_everywhere([a, b], uid, "presence-room", {"watcher", "u1", "u2"})

    crash(doomed)
    assert isinstance(a, HorizontalAdapter)
    a.request_timeout = 0.1  # shorter than node_timeout_ms: it is asked while still known
    partial = await a.channel_subscription_count(uid, "news")
    assert (partial.value, partial.nodes, partial.missing) == (1, 3, 1)

    # within node_timeout_ms (600 ms here) it is gone: member_removed for u1 only
    await members_everywhere([a, b], uid, "presence-room", {"watcher", "u2"})
    await settled()
    assert events_of(observer, REMOVED) == [{"user_id": "u1"}]
    assert await a.user_socket_count(uid, "u1") == 0
    assert await b.user_socket_count(uid, "u2") == 0  # its socket on b never signed in
    complete = await a.channel_subscription_count(uid, "news")
    assert (complete.value, complete.nodes, complete.missing) == (1, 2, 0)


async def test_a_stopping_node_leaves_at_once(cluster: ClusterFactory, uid: str) -> None:
    a, leaving = await cluster(2)
    observer = await connect(a, uid)
    await a.subscribe(uid, "presence-room", observer, PresenceMember("watcher"))
    # a socket still subscribed when the node stops (a server drains them first; the
    # goodbye covers anything left)
    await leaving.subscribe(uid, "presence-room", await connect(leaving, uid), PresenceMember("x"))
    await members_everywhere([a], uid, "presence-room", {"watcher", "x"})
    await leaving.stop()
    started = time.monotonic()
    await members_everywhere([a], uid, "presence-room", {"watcher"})
    assert time.monotonic() - started < 0.5  # not the node timeout: the goodbye
    assert (await a.sockets_count(uid)).nodes == 1


async def test_garbage_and_lost_messages_on_the_broker(cluster: ClusterFactory, uid: str) -> None:
    """Bad messages are logged and dropped without making up nodes; a change lost on the way
    (as in a broker outage) is noticed by its sequence number and repaired by a snapshot."""
    a, b = await cluster(2)
    assert isinstance(a, HorizontalAdapter) and isinstance(b, HorizontalAdapter)
    await a.transport.publish(
        [
            (None, b"not json"),
            (None, b"[1, 2]"),
            (None, b'{"t": "pj", "n": "ghost", "s": 1}'),
            (None, b'{"t": "b", "n": "ghost"}'),
            (b.node_id, b'{"t": "r", "n": "ghost", "id": "nope", "v": 1}'),
        ]
    )
    socket = await connect(a, uid)
    a._seq += 3  # three changes that b never got
    await a.subscribe(uid, "presence-room", socket, PresenceMember("u1"))
    await members_everywhere([a, b], uid, "presence-room", {"u1"})
    assert set(b.peers) == {a.node_id}
    count = await b.channel_subscription_count(uid, "presence-room")
    assert (count.value, count.nodes, count.missing) == (1, 2, 0)


# --- channel transitions: once per cluster -------------------------------------------------


async def listening(nodes: list[Adapter], log: list[Any] | None = None) -> list[Any]:
    """One shared transition log for ``nodes`` (each entry names the reporting node)."""
    shared: list[Any] = [] if log is None else log
    for index, node in enumerate(nodes):
        node.listen(Transitions(shared, index))
    return shared


def what(log: list[Any]) -> list[tuple[str, str, str | None]]:
    return sorted(entry[:3] for entry in log)


async def test_occupancy_is_reported_once_per_cluster(cluster: ClusterFactory, uid: str) -> None:
    a, b, c = await cluster(3)
    log = await listening([a, b, c])
    sockets = [await connect(node, uid) for node in (a, b, c)]
    await asyncio.gather(
        *(n.subscribe(uid, "room", s) for n, s in zip((a, b, c), sockets, strict=True))
    )
    await until(lambda: what(log) == [("occupied", "room", None)])
    await settled()  # every node knows every join (a leave racing a join is a blip:
    # vacated then occupied again, which the webhook dispatcher's 3 s hold cancels out)
    await a.unsubscribe(uid, "room", sockets[0])
    await b.unsubscribe(uid, "room", sockets[1])
    await settled()
    assert what(log) == [("occupied", "room", None)]
    await c.unsubscribe(uid, "room", sockets[2])
    await until(lambda: len(log) == 2)
    await settled()
    assert what(log) == [("occupied", "room", None), ("vacated", "room", None)]

    # many channels, spread over the nodes: each reported once, by various owners
    log.clear()
    nodes = (a, b, c)
    pairs = [(nodes[i % 3], await connect(nodes[i % 3], uid), f"ch{i}") for i in range(30)]
    for node, socket, channel in pairs:
        await node.subscribe(uid, channel, socket)
        other = nodes[(pairs.index((node, socket, channel)) + 1) % 3]
        await other.subscribe(uid, channel, await connect(other, uid))
    await until(lambda: len(log) >= 30)
    await settled()
    assert what(log) == sorted(("occupied", f"ch{i}", None) for i in range(30))
    assert len({entry[3] for entry in log}) > 1  # owners differ by channel


async def test_presence_is_reported_once_per_cluster(cluster: ClusterFactory, uid: str) -> None:
    a, b, c = await cluster(3)
    log = await listening([a, b, c])
    tabs = [await connect(node, uid) for node in (a, b)]
    member = PresenceMember("u1", {"name": "One"})
    await asyncio.gather(
        a.subscribe(uid, "presence-r", tabs[0], member),
        b.subscribe(uid, "presence-r", tabs[1], member),
    )
    await until(lambda: len(log) >= 2)
    await settled()
    assert what(log) == [("added", "presence-r", "u1"), ("occupied", "presence-r", None)]
    assert c.occupied(uid, "presence-r") and c.has_member(uid, "presence-r", "u1")
    await a.unsubscribe(uid, "presence-r", tabs[0])  # the other tab stays
    await settled()
    assert len(log) == 2
    await b.unsubscribe(uid, "presence-r", tabs[1])
    await until(lambda: len(log) == 4)
    await settled()
    assert what(log)[2:] == sorted(
        [("removed", "presence-r", "u1"), ("vacated", "presence-r", None)]
    )


async def test_a_joining_node_reports_nothing_old_and_a_dead_one_is_vacated(
    cluster: ClusterFactory, uid: str
) -> None:
    a, doomed = await cluster(2)
    log = await listening([a, doomed])
    socket = await connect(doomed, uid)
    await doomed.subscribe(uid, "presence-lonely", socket, PresenceMember("u9", None))
    await until(lambda: len(log) == 2)
    late = await cluster(3)  # three newcomers learn the state: nothing reported again
    await listening(late, log)
    await members_everywhere([a, *late], uid, "presence-lonely", {"u9"})
    await settled()
    assert len(log) == 2
    crash(doomed)
    await until(lambda: len(log) == 4, timeout=5)
    await settled()
    assert what(log)[2:] == sorted(
        [("removed", "presence-lonely", "u9"), ("vacated", "presence-lonely", None)]
    )
