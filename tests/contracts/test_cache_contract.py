"""Cache contract (``sockudo_py.cache.base.Cache``), run against every cache driver."""

from __future__ import annotations

import asyncio

from sockudo_py.cache import Cache, channel_cache_key


async def test_missing_key_is_none(cache: Cache, uid: str) -> None:
    assert await cache.get(f"{uid}:missing") is None
    assert await cache.ttl(f"{uid}:missing") is None


async def test_set_get_round_trip(cache: Cache, uid: str) -> None:
    values = {
        f"{uid}:plain": '{"event":"x","data":"{}"}',
        f"{uid}:unicode:ключ🙂": "héllo wörld ✓ 🙂 日本語",
        f"{uid}:large": ("0123456789abcdef" * 6400) + "✓",  # ~100 KB
        f"{uid}:empty": "",
    }
    for key, value in values.items():
        await cache.set(key, value)
    for key, value in values.items():
        assert await cache.get(key) == value


async def test_overwrite(cache: Cache, uid: str) -> None:
    key = f"{uid}:k"
    await cache.set(key, "one")
    await cache.set(key, "two")
    assert await cache.get(key) == "two"


async def test_delete(cache: Cache, uid: str) -> None:
    key = f"{uid}:k"
    await cache.set(key, "v", 60)
    await cache.delete(key)
    assert await cache.get(key) is None
    assert await cache.ttl(key) is None
    await cache.delete(key)  # deleting a missing key is fine
    await cache.delete(f"{uid}:never-set")


async def test_ttl_without_expiry_is_minus_one(cache: Cache, uid: str) -> None:
    # the fixture's drivers have no default TTL (see conftest): ttl=None means no expiry
    key = f"{uid}:forever"
    await cache.set(key, "v")
    assert await cache.ttl(key) == -1


async def test_ttl_after_set_with_ttl(cache: Cache, uid: str) -> None:
    key = f"{uid}:k"
    await cache.set(key, "v", 30)
    remaining = await cache.ttl(key)
    assert remaining is not None and 0 < remaining <= 30
    await cache.set(key, "v", 5)  # a new set replaces the lifetime
    remaining = await cache.ttl(key)
    assert remaining is not None and 0 < remaining <= 5


async def test_expiry(cache: Cache, uid: str) -> None:
    key, other = f"{uid}:short", f"{uid}:long"
    await cache.set(key, "v", 0.2)
    await cache.set(other, "w", 30)
    assert await cache.get(key) == "v"
    await asyncio.sleep(0.4)
    assert await cache.get(key) is None
    assert await cache.ttl(key) is None
    assert await cache.get(other) == "w"


async def test_keys_are_independent(cache: Cache, uid: str) -> None:
    keys = [f"{uid}:k", f"{uid}:k:1", f"{uid}:k1", f"{uid}:K", f"{uid}:k*", f"{uid}:"]
    for i, key in enumerate(keys):
        await cache.set(key, str(i))
    await cache.delete(f"{uid}:k")
    assert await cache.get(f"{uid}:k") is None
    for i, key in enumerate(keys[1:], start=1):
        assert await cache.get(key) == str(i)


async def test_channel_cache_key_format(cache: Cache, uid: str) -> None:
    assert channel_cache_key("123", "cache-news") == "app:123:channel:cache-news:cache_miss"
    key_a = channel_cache_key(f"{uid}a", "cache-news")
    key_b = channel_cache_key(f"{uid}b", "cache-news")
    await cache.set(key_a, "frame-a", 30)
    assert await cache.get(key_a) == "frame-a"
    assert await cache.get(key_b) is None
