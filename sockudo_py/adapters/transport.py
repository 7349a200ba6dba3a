"""The transport interface: how the cluster adapter's messages travel through a broker."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

MessageHandler = Callable[[bytes], None]

# A message's destination: ``None`` is every node (the cluster channel), else a node id.
Target = str | None


class Transport(ABC):
    """One connection to a broker, carrying opaque messages between the nodes of a cluster.

    There are two kinds of destination: the cluster channel, which every node subscribes to,
    and each node's own channel. Messages one node publishes to one destination arrive in the
    order they were published. A node may or may not receive its own cluster messages.

    The transport does not reconnect by itself: ``connect`` makes one attempt, ``run`` returns
    (or raises) when the connection is lost, and the adapter closes it and connects again
    with back-off. Every method raises on failure; none retries.
    """

    def __init__(self, prefix: str, node_id: str) -> None:
        self.prefix = prefix
        self.node_id = node_id

    @property
    @abstractmethod
    def name(self) -> str:
        """The driver name, for logs."""

    @abstractmethod
    async def connect(self, on_message: MessageHandler) -> None:
        """Connect and subscribe to the cluster channel and this node's channel; returns
        once the subscriptions are in place. ``on_message`` gets each message's bytes."""

    @abstractmethod
    async def run(self) -> None:
        """Receive messages until the connection is lost (then return or raise)."""

    @abstractmethod
    async def publish(self, messages: Sequence[tuple[Target, bytes]]) -> None:
        """Publish ``messages`` in order; returns once the broker has taken them all."""

    @abstractmethod
    async def close(self) -> None:
        """Release the connection; safe to call at any time, more than once."""
