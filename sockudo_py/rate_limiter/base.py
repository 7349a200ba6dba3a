"""The rate limiter interface: fixed-window counters shared by whoever uses the same driver,
and the client-IP rule the per-IP limits are keyed by."""

from __future__ import annotations

import ipaddress
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one ``hit``: ``allowed`` or not, the ``limit`` it was checked against,
    the points left in the current window (``remaining``, never negative) and the seconds
    until that window ends (``reset_after_seconds``, > 0)."""

    allowed: bool
    limit: int
    remaining: int
    reset_after_seconds: float


class RateLimiter(ABC):
    """Fixed-window counters (Sockudo's algorithm).

    ``hit(key, limit, window_seconds, cost)`` counts ``cost`` points against ``key``. A window
    opens at a key's first counted hit and lasts ``window_seconds``; within it at most
    ``limit`` points are counted. A hit that would take the count over ``limit`` is denied
    and counts nothing (so a denied batch does not eat the points smaller requests could
    still use, and a client retrying after ``reset_after_seconds`` gets through); a ``cost``
    larger than ``limit`` is always denied. When the window ends the count starts again from
    zero. Every caller of one driver instance, and for a shared store (Redis) every node,
    counts against the same window of a key.

    A limiter never raises to its caller because its store is unavailable: it lets the hit
    through (fails open) and logs a warning, at most one per interval.
    """

    async def start(self) -> None:
        """Open connections."""

    async def stop(self) -> None:
        """Release connections."""

    @abstractmethod
    async def hit(self, key: str, limit: int, window_seconds: float, cost: int = 1) -> Decision: ...


class NoRateLimiter(RateLimiter):
    """``rate_limiter.enabled: false``: everything is allowed, nothing is stored."""

    async def hit(self, key: str, limit: int, window_seconds: float, cost: int = 1) -> Decision:
        return Decision(True, limit, limit, float(window_seconds))


def client_ip(peer: str | None, forwarded_for: Iterable[str], trust_hops: int) -> str:
    """The address a per-IP limit is keyed by.

    ``peer`` is the socket's remote address; ``forwarded_for`` the values of every
    ``X-Forwarded-For`` header, in order. With ``trust_hops`` = 0 the header is ignored (anyone
    can send it). With N > 0 trusted proxies in front of the server, each of which appended
    the address it saw, the client is the N-th entry from the right (the entries further left
    were written by the client itself and could be forged); if the chain is shorter than N,
    its leftmost entry. An entry that is not an IP address (after stripping a port) falls back
    to ``peer``.
    """
    if trust_hops <= 0:
        return peer or "unknown"
    chain = [part.strip() for value in forwarded_for for part in value.split(",") if part.strip()]
    if not chain:
        return peer or "unknown"
    entry = chain[-trust_hops] if len(chain) >= trust_hops else chain[0]
    address = _address(entry)
    return address if address is not None else (peer or "unknown")


def _address(entry: str) -> str | None:
    candidates = [entry]
    if entry.startswith("[") and "]" in entry:  # [v6]:port
        candidates.append(entry[1 : entry.index("]")])
    elif entry.count(":") == 1:  # v4:port
        candidates.append(entry.split(":", 1)[0])
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return None
