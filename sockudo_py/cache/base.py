"""The cache interface: short-lived shared values (cache-channel events, app lookups)."""

from __future__ import annotations

from abc import ABC, abstractmethod


class Cache(ABC):
    """A string key-value store with per-key time to live.

    ``get`` of a missing or expired key is ``None``; ``ttl`` is the remaining lifetime in
    seconds (``None`` for a missing key, ``-1`` for a key without expiry). ``set`` without a
    ``ttl`` uses the driver's configured default TTL, or no expiry when it has none; TTLs are
    fractional seconds.
    """

    async def start(self) -> None:
        """Open connections."""

    async def stop(self) -> None:
        """Release connections."""

    @abstractmethod
    async def get(self, key: str) -> str | None: ...

    @abstractmethod
    async def set(self, key: str, value: str, ttl: float | None = None) -> None: ...

    @abstractmethod
    async def delete(self, key: str) -> None: ...

    @abstractmethod
    async def ttl(self, key: str) -> float | None: ...


def channel_cache_key(app_id: str, channel: str) -> str:
    """Where a cache channel's last event is kept (Sockudo's and soketi's key)."""
    return f"app:{app_id}:channel:{channel}:cache_miss"
