"""What only the memory cache promises: a capacity bound and a default TTL. The rest of its
behaviour is the cache contract (tests/contracts/test_cache_contract.py)."""

from __future__ import annotations

import asyncio

from sockudo_py.cache.memory import MemoryCache


async def test_capacity_evicts_the_oldest() -> None:
    cache = MemoryCache(max_capacity=3)
    for key in "abcd":
        await cache.set(key, key)
    assert await cache.get("a") is None
    assert [await cache.get(k) for k in "bcd"] == ["b", "c", "d"]


async def test_capacity_evicts_the_least_recently_set() -> None:
    cache = MemoryCache(max_capacity=3)
    for key in "abc":
        await cache.set(key, key)
    await cache.set("a", "a2")  # re-set: now the newest
    await cache.get("b")  # a read does not refresh
    await cache.set("d", "d")
    assert await cache.get("b") is None
    assert [await cache.get(k) for k in "acd"] == ["a2", "c", "d"]


async def test_expired_entries_go_before_live_ones() -> None:
    cache = MemoryCache(max_capacity=3)
    await cache.set("a", "a")
    await cache.set("short", "s", 0.05)
    await cache.set("c", "c")
    await asyncio.sleep(0.1)
    await cache.set("d", "d")
    assert [await cache.get(k) for k in ("a", "c", "d")] == ["a", "c", "d"]

