"""The cluster adapter: N nodes sharing a broker (Redis, Redis Cluster or NATS).

How the nodes agree, in short (the README has the long form):

* **Broadcasts** are delivered locally, then published once on the cluster channel; every
  other node delivers them to its own sockets.
* **Presence and sign-in state is replicated.** Each node publishes the joins and leaves of
  its presence members and the sign-ins and sign-outs of its sockets, numbered by a per-node
  sequence. Every node keeps the whole cluster's members in its namespaces and renders
  ``member_added`` / ``member_removed`` (and watchlist events) for its *own* sockets when a
  user's count crosses zero in its view. Each node sees each node's changes in order, so
  every subscriber gets each transition exactly once, and member lists are answered locally.
  Which channels each node has sockets in is replicated the same way, so every node knows
  when a channel becomes occupied or vacated cluster-wide; of those transitions, and of the
  presence ones, the channel's owner (rendezvous hashing of the channel over the live nodes)
  alone tells the ``ChannelListener``, so each webhook leaves the cluster once.
* **Snapshots repair gaps.** A node announces itself with ``hello`` carrying its state;
  the others answer with theirs. A sequence gap (messages lost while the broker was away)
  makes the receiver ask for a fresh snapshot, which replaces what it knew of that node.
* **Counts are queried.** Socket and channel counts are asked of every known node by
  request/response with a timeout; an answer that misses a node says so (``Answer``).
* **Dead nodes leave.** With ``cluster_health`` on, nodes send heartbeats; a node silent
  for ``node_timeout_ms`` is dropped and its members leave with ``member_removed``. A node
  that stops gracefully says ``bye`` and is dropped at once; after its ``bye`` it only
  publishes broadcasts, queries and terminations (what HTTP requests still running need),
  never its state again, so nobody re-learns it.
* **The broker may go away.** The node keeps serving its own sockets, reports itself
  degraded, queues what it has to publish (bounded) and reconnects with back-off; on
  reconnecting it announces itself again before publishing the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..config import ClusterHealthConfig
from ..core import Namespace, Socket
from ..protocol.frames import PresenceMember
from .base import Answer
from .local import LocalAdapter
from .transport import Target, Transport

log = logging.getLogger("sockudo_py.adapters")

MAX_OUTBOX = 100_000
"""Messages kept for the broker while it is away; beyond this the oldest are dropped."""
PUBLISH_BATCH = 512
RECONNECT_MIN, RECONNECT_MAX = 0.1, 10.0
STOP_FLUSH_SECONDS = 1.0
AFTER_LEAVING = frozenset({"b", "q", "term", "bye"})
"""What a node that said ``bye`` still publishes: broadcasts, its own queries, terminations."""


@dataclass(slots=True)
class Peer:
    """What this node knows of another node: its replicated state and liveness.

    ``seq`` is the last state sequence applied; ``None`` while a snapshot is awaited.
    ``members`` maps ``(app, channel, socket_id)`` to the member; ``users`` holds
    ``(app, user_id, socket_id)`` of its signed-in sockets; ``channels`` the ``(app, channel)``
    it has sockets in; ``introduced`` once its first snapshot was applied."""

    node_id: str
    last_seen: float
    seq: int | None = None
    state_at: float = 0.0
    epoch: str = ""
    broadcast_seen: int = 0
    members: dict[tuple[str, str, str], PresenceMember] = field(default_factory=dict)
    users: set[tuple[str, str, str]] = field(default_factory=set)
    channels: set[tuple[str, str]] = field(default_factory=set)
    introduced: bool = False


@dataclass(slots=True)
class _Query:
    app_id: str
    expected: set[str]
    answers: dict[str, Any] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def settle(self) -> None:
        if self.expected <= self.answers.keys():
            self.done.set()


class HorizontalAdapter(LocalAdapter):
    """A ``LocalAdapter`` joined to the other nodes through a ``Transport``.

    Contract on top of ``Adapter``: member lists, presence transitions and user counts are
    cluster-wide and answered from this node's replicated view; ``sockets_count``,
    ``channels`` and ``channel_subscription_count`` ask every known node and wait at most
    ``request_timeout`` seconds, marking the answer partial for nodes that did not reply
    (at once, without waiting, while the broker is unreachable).
    """

    def __init__(
        self,
        transport: Transport,
        *,
        request_timeout: float,
        health: ClusterHealthConfig,
        fallback_to_local: bool = True,
        connect_timeout: float = 5.0,
        discovery_idle: float = 0.15,
        discovery_max: float = 1.0,
    ) -> None:
        super().__init__(transport.node_id)
        self.transport = transport
        self.request_timeout = request_timeout
        self.health = health
        self.fallback_to_local = fallback_to_local
        self.connect_timeout = connect_timeout
        self.discovery_idle = discovery_idle
        self.discovery_max = discovery_max
        self.peers: dict[str, Peer] = {}
        self._seq = 0
        self._epoch = uuid.uuid4().hex
        self._broadcasts = 0
        self._outbox: deque[tuple[Target, bytes]] = deque()
        self._dropped = 0
        self._dropped_total = 0
        self._wake = asyncio.Event()
        self._up = asyncio.Event()
        self._first_try = asyncio.Event()  # set once the first connection is up or failed
        self._queries: dict[str, _Query] = {}
        self._asked: dict[str, float] = {}  # unknown nodes asked for a snapshot, and when
        self._query_ids = itertools.count()
        self._last_state_at = 0.0
        self._generation = 0
        self._last_error: BaseException | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._left = False
        self._introducing = False
        self._departed: dict[str, str] = {}  # dropped node -> its epoch (a return is news)
        self._publishing = False

    # --- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._connection_loop()),
            loop.create_task(self._publish_loop()),
        ]
        if self.health.enabled:
            self._tasks.append(loop.create_task(self._health_loop()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_try.wait(), self.connect_timeout)
        if not self._up.is_set():
            reason = f"cannot reach the broker: {self._last_error or 'timed out'}"
            if not self.fallback_to_local:
                await self.stop()
                raise RuntimeError(f"adapter {self.transport.name}: {reason}") from None
            log.error(
                "adapter %s: %s; serving local sockets and retrying", self.transport.name, reason
            )

    async def leave(self, timeout: float = STOP_FLUSH_SECONDS) -> None:
        if self._left:
            return
        self._left = True
        if self._up.is_set():
            self._send(None, "bye")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained(), timeout)

    async def stop(self) -> None:
        await self.leave()
        self._stopping = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await self.transport.close()
        if tasks:  # bounded: a client library may swallow a cancellation
            await asyncio.wait(tasks, timeout=STOP_FLUSH_SECONDS)

    async def _drained(self) -> None:
        while (self._outbox or self._publishing) and self._up.is_set():
            await asyncio.sleep(0.01)

    @property
    def degraded(self) -> bool:
        return not self._up.is_set()

    @property
    def node_count(self) -> int:
        return len(self.peers) + 1

    @property
    def dropped_messages(self) -> int:
        return self._dropped_total

    async def _connection_loop(self) -> None:
        delay = RECONNECT_MIN
        while not self._stopping:
            reader: asyncio.Task[None] | None = None
            try:
                self._generation += 1
                await self.transport.connect(self._on_message)
                reader = asyncio.get_running_loop().create_task(self.transport.run())
                await self._announce()
                self._up.set()
                self._first_try.set()
                self._wake.set()
                if delay > RECONNECT_MIN:
                    log.warning("adapter %s: connected to the broker again", self.transport.name)
                    self.observer.reconnected(self.transport.name)
                delay = RECONNECT_MIN
                await reader
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._last_error = exc
                self._first_try.set()
            finally:
                if reader is not None:
                    reader.cancel()
                self._up.clear()
                await self.transport.close()
            if self._stopping:
                return
            log.warning(
                "adapter %s: broker unreachable (%s); retrying in %.1fs",
                self.transport.name,
                self._last_error,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX)

    async def _announce(self) -> None:
        """Say hello with our state, then wait for the others to answer with theirs: until
        every node we knew of has (so it is subscribed again after a broker restart, and
        our queued messages reach it) and no new one has for ``discovery_idle``. At most
        ``discovery_max`` when we knew of nobody, else up to the node timeout. Only then may
        the queued messages go out."""
        if self._left:  # back after a broker outage while leaving: say bye again
            await self.transport.publish([(None, self._message("bye"))])
            return
        started = time.monotonic()
        for peer in self.peers.values():
            peer.last_seen = started  # the broker was away, not they
        self._last_state_at = started
        await self.transport.publish([(None, self._message("hello", **self._state()))])
        known = set(self.peers)
        limit = self.discovery_max
        if known:
            limit = max(limit, self.health.node_timeout_ms / 1000 if self.health.enabled else 0)
        while (now := time.monotonic()) - started < limit:
            waiting = [p for p in known if p in self.peers and self.peers[p].state_at < started]
            if not waiting and now - self._last_state_at >= self.discovery_idle:
                return
            await asyncio.sleep(0.02)

    # --- publishing ------------------------------------------------------------------------

    def _message(self, kind: str, **fields: Any) -> bytes:
        """A message of ``kind`` from this node; fields that are None are left out."""
        message = {"t": kind, "n": self.node_id}
        message.update((key, value) for key, value in fields.items() if value is not None)
        return orjson.dumps(message)

    def _send(self, target: Target, kind: str, **fields: Any) -> None:
        """Queue a message for the broker, in order, without waiting (after ``bye``, only
        the kinds of ``AFTER_LEAVING``)."""
        if self._left and kind not in AFTER_LEAVING:
            return
        self._outbox.append((target, self._message(kind, **fields)))
        if len(self._outbox) > MAX_OUTBOX:
            self._outbox.popleft()
            self._dropped += 1
            self._dropped_total += 1
            if self._dropped in (1, 1000) or self._dropped % 100_000 == 0:
                log.error(
                    "adapter %s: broker unreachable, %d queued messages dropped",
                    self.transport.name,
                    self._dropped,
                )
        self._wake.set()

    def _replicate(self, kind: str, **fields: Any) -> None:
        """Queue a change of this node's replicated state, numbered in sequence."""
        self._seq += 1
        self._send(None, kind, s=self._seq, **fields)

    async def _publish_loop(self) -> None:
        while not self._stopping:  # (a cancel may be swallowed by a client library)
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                await self._up.wait()
                size = min(PUBLISH_BATCH, len(self._outbox))
                batch = [self._outbox.popleft() for _ in range(size)]
                generation = self._generation
                self._publishing = True
                try:
                    await self.transport.publish(batch)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._outbox.extendleft(reversed(batch))
                    if self._stopping:
                        return
                    if generation == self._generation:  # else it has reconnected already
                        self._last_error = exc
                        self._up.clear()
                        await self.transport.close()  # the connection loop reconnects
                    break
                finally:
                    self._publishing = False
            if self._dropped and self._up.is_set():
                log.warning(
                    "adapter %s: %d messages were dropped", self.transport.name, self._dropped
                )
                self._dropped = 0

    # --- state snapshots --------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        """The body of ``hello`` and ``state``: this node's occupied channels, presence
        members and signed-in sockets, the sequence number they are current as of, its
        ``epoch`` (one per process)."""
        channels = [[ns.app_id, name] for ns in self._namespaces.values() for name in ns.channels]
        members = [
            [ns.app_id, channel, socket_id, member.user_id, member.user_info]
            for ns in self._namespaces.values()
            for channel, sockets in ns.channels.items()
            if channel in ns.presence
            for socket_id in sockets
            if (member := ns.presence[channel].get(socket_id)) is not None
        ]
        users = [
            [ns.app_id, user_id, socket_id]
            for ns in self._namespaces.values()
            for user_id, sockets in ns.users.items()
            for socket_id in sockets
        ]
        return {"e": self._epoch, "s": self._seq, "c": channels, "m": members, "u": users}

    def _apply_state(self, peer: Peer, message: dict[str, Any]) -> None:
        """Replace what we know of ``peer`` with its snapshot: additions first, so a user
        whose socket changed but who stayed does not flicker."""
        channels = {(app, channel) for app, channel in message.get("c", ())}
        members = {
            (app, channel, sid): PresenceMember(user_id, info)
            for app, channel, sid, user_id, info in message["m"]
        }
        users = {(app, user_id, sid) for app, user_id, sid in message["u"]}
        self._introducing = not peer.introduced and self._departed.get(peer.node_id) != peer.epoch
        peer.introduced = True
        try:
            for occupied in channels - peer.channels:
                self._peer_occupied(peer, occupied)
            for key, member in members.items():
                if key not in peer.members:
                    self._peer_joined(peer, key, member)
            for key in users - peer.users:
                self._peer_signed_in(peer, key)
            for key in [key for key in peer.members if key not in members]:
                self._peer_left(peer, key)
            for key in peer.users - users:
                self._peer_signed_out(peer, key)
            for vacated in peer.channels - channels:
                self._peer_vacated(peer, vacated)
        finally:
            self._introducing = False
        peer.seq = message["s"]
        self._last_state_at = time.monotonic()

    def _drop_peer(self, peer: Peer, why: str) -> None:
        """Forget a node that left or died; its users leave their channels here."""
        log.warning("adapter %s: node %s %s", self.transport.name, peer.node_id, why)
        self.peers.pop(peer.node_id, None)
        if len(self._departed) > 1000:
            self._departed.clear()
        self._departed[peer.node_id] = peer.epoch
        for key in list(peer.members):
            self._peer_left(peer, key)
        for key in list(peer.users):
            self._peer_signed_out(peer, key)
        for occupied in list(peer.channels):
            self._peer_vacated(peer, occupied)
        for query in self._queries.values():
            if peer.node_id in query.expected:
                query.expected.discard(peer.node_id)
                query.settle()

    def _peer_joined(self, peer: Peer, key: tuple[str, str, str], member: PresenceMember) -> None:
        app_id, channel, socket_id = key
        peer.members[key] = member
        self._member_joined(self.namespace(app_id), channel, socket_id, member)

    def _peer_left(self, peer: Peer, key: tuple[str, str, str]) -> None:
        app_id, channel, socket_id = key
        if peer.members.pop(key, None) is not None:
            ns = self.namespace(app_id)
            self._member_left(ns, channel, socket_id)
            self._release(ns)

    def _peer_occupied(self, peer: Peer, key: tuple[str, str]) -> None:
        if key not in peer.channels:
            peer.channels.add(key)
            ns = self.namespace(key[0])
            if ns.count_remote_channel(key[1], 1):
                self._occupancy_changed(ns, key[1], True)

    def _peer_vacated(self, peer: Peer, key: tuple[str, str]) -> None:
        if key in peer.channels:
            peer.channels.discard(key)
            ns = self.namespace(key[0])
            if ns.count_remote_channel(key[1], -1):
                self._occupancy_changed(ns, key[1], False)
            self._release(ns)

    def _peer_signed_in(self, peer: Peer, key: tuple[str, str, str]) -> None:
        if key not in peer.users:
            peer.users.add(key)
            ns = self.namespace(key[0])
            if ns.count_user(key[1], 1):
                self._user_changed(ns, key[1], "online")

    def _peer_signed_out(self, peer: Peer, key: tuple[str, str, str]) -> None:
        if key in peer.users:
            peer.users.discard(key)
            ns = self.namespace(key[0])
            if ns.count_user(key[1], -1):
                self._user_changed(ns, key[1], "offline")
            self._release(ns)

    # --- receiving ---------------------------------------------------------------------------

    def _on_message(self, data: bytes) -> None:
        try:
            message = orjson.loads(data)
            sender = message["n"]
            if sender == self.node_id:
                return
            self._dispatch(message["t"], sender, message)
        except Exception:
            log.exception("adapter %s: bad cluster message %.200r", self.transport.name, data)

    def _dispatch(self, kind: str, sender: str, message: dict[str, Any]) -> None:
        if kind == "b":
            peer = self.peers.get(sender)
            if peer is not None:  # a publish retried after a broker failure: drop copies
                if message["o"] <= peer.broadcast_seen:
                    return
                peer.broadcast_seen = message["o"]
            ns = self._namespaces.get(message["a"])
            if ns is not None:
                self._deliver(ns, message["c"], message["f"], message.get("x"))
            return
        if kind == "r":
            query = self._queries.get(message["id"])
            if query is not None:
                self.observer.response_received(query.app_id)
                query.answers[sender] = message["v"]
                query.settle()
            return
        if kind == "x":
            if self.relay_listener is not None:
                self.relay_listener(sender, message["v"])
            return
        if kind == "bye":
            peer = self.peers.get(sender)
            if peer is not None:
                self._drop_peer(peer, "left the cluster")
            return
        now = time.monotonic()
        peer = self.peers.get(sender)
        if peer is not None:
            peer.last_seen = now
        if kind == "q":
            self._answer(sender, message)
            return
        if kind == "term":
            self._terminate_local(message["a"], message["u"])
            return
        if kind == "sync":
            if message["to"] == self.node_id:
                self._send(None, "state", **self._state())
            return
        if peer is None:
            if kind not in ("hello", "state", "hb"):
                # a change from a node we do not know (yet): its snapshot introduces it
                if now - self._asked.get(sender, 0.0) > 1.0:
                    if len(self._asked) > 1000:  # garbage with made-up senders
                        self._asked.clear()
                    self._asked[sender] = now
                    self._send(None, "sync", to=sender)
                return
            peer = self.peers[sender] = Peer(sender, now)
            self._asked.pop(sender, None)
            log.info("adapter %s: node %s joined", self.transport.name, sender)
        if kind in ("hello", "state"):
            peer.state_at = now
            if message["e"] != peer.epoch:  # a new process under this id: count afresh
                peer.epoch, peer.broadcast_seen = message["e"], 0
            if peer.seq is None or message["s"] > peer.seq or kind == "hello":
                self._apply_state(peer, message)
            if kind == "hello":
                self._send(None, "state", **self._state())
        elif kind == "hb":  # also asks again for a snapshot that never came
            if peer.seq is None or message["s"] > peer.seq:
                self._resync(peer)
        elif kind in ("co", "cv", "pj", "pl", "ui", "uo"):
            self._apply_change(peer, kind, message)

    def _resync(self, peer: Peer) -> None:
        """Lost messages of ``peer``: ignore its changes until its snapshot arrives."""
        peer.seq = None
        self._send(None, "sync", to=peer.node_id)

    def _apply_change(self, peer: Peer, kind: str, message: dict[str, Any]) -> None:
        seq = message["s"]
        if peer.seq is None or seq <= peer.seq:
            return  # a snapshot is on its way, or already covers this change
        if seq != peer.seq + 1:
            self._resync(peer)
            return
        peer.seq = seq
        app_id = message["a"]
        if kind == "pj":
            user_id, info = message["m"]
            key = (app_id, message["c"], message["i"])
            if key not in peer.members:
                self._peer_joined(peer, key, PresenceMember(user_id, info))
        elif kind == "pl":
            self._peer_left(peer, (app_id, message["c"], message["i"]))
        elif kind == "co":
            self._peer_occupied(peer, (app_id, message["c"]))
        elif kind == "cv":
            self._peer_vacated(peer, (app_id, message["c"]))
        elif kind == "ui":
            self._peer_signed_in(peer, (app_id, message["u"], message["i"]))
        else:
            self._peer_signed_out(peer, (app_id, message["u"], message["i"]))

    # --- health -------------------------------------------------------------------------------

    async def _health_loop(self) -> None:
        heartbeat = self.health.heartbeat_interval_ms / 1000
        cleanup = self.health.cleanup_interval_ms / 1000
        timeout = self.health.node_timeout_ms / 1000
        next_heartbeat = next_cleanup = time.monotonic()
        while True:
            now = time.monotonic()
            if self._up.is_set():
                if now >= next_heartbeat:
                    self._send(None, "hb", s=self._seq)
                    next_heartbeat = now + heartbeat
                if now >= next_cleanup:
                    for peer in list(self.peers.values()):
                        if now - peer.last_seen > timeout:
                            self._drop_peer(peer, f"silent for {timeout:g}s: removed")
                    next_cleanup = now + cleanup
            wake_at = min(next_heartbeat, next_cleanup) if self._up.is_set() else now + 0.1
            await asyncio.sleep(max(0.01, wake_at - time.monotonic()))

    # --- membership --------------------------------------------------------------------------

    async def sign_in(self, app_id: str, socket: Socket) -> None:
        await super().sign_in(app_id, socket)
        self._replicate("ui", a=app_id, u=socket.user_id, i=socket.socket_id)

    async def sign_out(self, app_id: str, socket: Socket) -> None:
        await super().sign_out(app_id, socket)
        self._replicate("uo", a=app_id, u=socket.user_id, i=socket.socket_id)

    def _locally_occupied(self, ns: Namespace, channel: str, occupied: bool) -> None:
        self._replicate("co" if occupied else "cv", a=ns.app_id, c=channel)
        if channel not in ns.remote_channels:
            self._occupancy_changed(ns, channel, occupied)

    def _local_member_joined(
        self, ns: Namespace, channel: str, socket_id: str, member: PresenceMember
    ) -> None:
        super()._local_member_joined(ns, channel, socket_id, member)
        info = [member.user_id, member.user_info]
        self._replicate("pj", a=ns.app_id, c=channel, i=socket_id, m=info)

    def _local_member_left(self, ns: Namespace, channel: str, socket_id: str) -> None:
        super()._local_member_left(ns, channel, socket_id)
        self._replicate("pl", a=ns.app_id, c=channel, i=socket_id)

    def _reports(self, app_id: str, channel: str) -> bool:
        """The channel's owner reports it: by rendezvous hashing, the live node with the
        highest score for the channel, so every node agrees while they agree on who is
        alive. Nobody reports what a node's introduction shows (it happened before we knew
        of that node, and was reported then)."""
        if self._introducing:
            return False
        if not self.peers:
            return True
        if self._left:
            return False  # the others report what this node's leaving changes
        key = f"\0{app_id}\0{channel}".encode()

        def score(node_id: str) -> bytes:
            return hashlib.blake2b(node_id.encode() + key, digest_size=8).digest()

        mine = score(self.node_id)
        return all(score(node_id) < mine for node_id in self.peers)

    # --- delivery ------------------------------------------------------------------------------

    async def broadcast(
        self, app_id: str, channel: str, frame: str, except_socket_id: str | None = None,
        started: float | None = None,
    ) -> None:  # fmt: skip
        await super().broadcast(app_id, channel, frame, except_socket_id, started)
        self._broadcasts += 1
        self._send(None, "b", o=self._broadcasts, a=app_id, c=channel, f=frame, x=except_socket_id)

    async def terminate_user_connections(self, app_id: str, user_id: str) -> None:
        self._terminate_local(app_id, user_id)
        self._send(None, "term", a=app_id, u=user_id)

    def relay(self, message: Any) -> None:
        if self._up.is_set():
            self._send(None, "x", v=message)

    # --- queries ------------------------------------------------------------------------------

    def _answer(self, asker: str, message: dict[str, Any]) -> None:
        app_id, what = message["a"], message["k"]
        value: Any
        if what == "sockets":
            value = self._local_sockets_count(app_id)
        elif what == "channels":
            value = self._local_channels(app_id)
        elif what == "channel":
            value = self._local_subscription_count(app_id, message["c"])
        else:
            return
        self.observer.request_received(app_id)
        self._send(asker, "r", id=message["id"], v=value)

    async def _ask(
        self, app_id: str, what: str, channel: str | None = None
    ) -> tuple[list[Any], int, int]:
        """Ask every known node; (their answers, nodes asked incl. us, nodes missing)."""
        expected = set(self.peers)
        nodes = len(expected) + 1
        if not expected:
            return [], nodes, 0
        if not self._up.is_set():
            self.observer.request_done(app_id, None, False)
            return [], nodes, len(expected)
        query_id = f"{self.node_id}:{next(self._query_ids)}"
        query = self._queries[query_id] = _Query(app_id, expected)
        self._send(None, "q", id=query_id, a=app_id, k=what, c=channel)
        self.observer.request_sent(app_id)
        started = time.monotonic()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(query.done.wait(), self.request_timeout)
        finally:
            del self._queries[query_id]
        missing = len(query.expected - query.answers.keys())
        self.observer.request_done(app_id, time.monotonic() - started, not missing)
        if missing:
            log.warning(
                "adapter %s: %d of %d nodes did not answer a %s query",
                self.transport.name,
                missing,
                nodes,
                what,
            )
        return list(query.answers.values()), nodes, missing

    async def sockets_count(self, app_id: str) -> Answer[int]:
        answers, nodes, missing = await self._ask(app_id, "sockets")
        return Answer(self._local_sockets_count(app_id) + sum(answers), nodes, missing)

    async def channels(self, app_id: str) -> Answer[dict[str, int]]:
        answers, nodes, missing = await self._ask(app_id, "channels")
        merged = self._local_channels(app_id)
        for counts in answers:
            for channel, count in counts.items():
                merged[channel] = merged.get(channel, 0) + count
        return Answer(merged, nodes, missing)

    async def channel_subscription_count(self, app_id: str, channel: str) -> Answer[int]:
        answers, nodes, missing = await self._ask(app_id, "channel", channel)
        local = self._local_subscription_count(app_id, channel)
        return Answer(local + sum(answers), nodes, missing)


def new_node_id(configured: str | None) -> str:
    """``instance.process_id`` if configured, else a random UUID."""
    return configured or str(uuid.uuid4())


__all__ = ["HorizontalAdapter", "Peer", "new_node_id"]
