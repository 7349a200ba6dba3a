"""The ``memory`` cache: in process, with expiry and a capacity bound."""

from __future__ import annotations

import time
from collections import OrderedDict

from .base import Cache


class MemoryCache(Cache):
    """Least-recently-set entries are evicted past ``max_capacity``; expired entries are
    dropped when read and when the cache is full."""

    def __init__(self, max_capacity: int = 10000, default_ttl: float | None = None) -> None:
        self._entries: OrderedDict[str, tuple[str, float | None]] = OrderedDict()
        self._max_capacity = max_capacity
        self._default_ttl = default_ttl

    def _live(self, key: str) -> tuple[str, float | None] | None:
        entry = self._entries.get(key)
        if entry is not None and entry[1] is not None and entry[1] <= time.monotonic():
            del self._entries[key]
            return None
        return entry

    async def get(self, key: str) -> str | None:
        entry = self._live(key)
        return entry[0] if entry is not None else None

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        ttl = self._default_ttl if ttl is None else ttl
        expires = time.monotonic() + ttl if ttl is not None and ttl > 0 else None
        self._entries.pop(key, None)
        self._entries[key] = (value, expires)
        if len(self._entries) > self._max_capacity:
            self._evict()

    def _evict(self) -> None:
        now = time.monotonic()
        for key in [k for k, (_, exp) in self._entries.items() if exp is not None and exp <= now]:
            del self._entries[key]
        while len(self._entries) > self._max_capacity:
            self._entries.popitem(last=False)

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    async def ttl(self, key: str) -> float | None:
        entry = self._live(key)
        if entry is None:
            return None
        return -1 if entry[1] is None else entry[1] - time.monotonic()
