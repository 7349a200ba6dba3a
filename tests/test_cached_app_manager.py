"""``CachedAppManager`` over a store, with the memory and the redis cache drivers: lookups come
from the cache for ``ttl``; changes through the manager clear the entries at once, changes made
in the store behind it show within ``ttl``; an unavailable store leaves known apps working and
answers unknown ones at once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from sockudo_py.app_manager import AppManagerUnavailable
from sockudo_py.app_manager.cached import CachedAppManager
from sockudo_py.app_manager.memory import MemoryAppManager
from sockudo_py.cache import Cache, create_cache
from sockudo_py.config import App, Config


class Store(MemoryAppManager):
    """A store that counts its lookups and can be taken down."""

    def __init__(self) -> None:
        super().__init__([])
        self.lookups = 0
        self.down = False

    async def find_by_id(self, app_id: str) -> App | None:
        self._touch()
        return await super().find_by_id(app_id)

    async def find_by_key(self, key: str) -> App | None:
        self._touch()
        return await super().find_by_key(key)

    def _touch(self) -> None:
        if self.down:
            raise AppManagerUnavailable("the database is down")
        self.lookups += 1


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    fragment = {
        "cache": {"driver": request.param, "redis": {"prefix": f"t-{uuid.uuid4().hex[:8]}:"}},
        "database": {"redis": {"url": "redis://127.0.0.1:6379/0"}},
    }
    driver = create_cache(Config.model_validate(fragment))
    await driver.start()
    yield driver
    await driver.stop()


def an_app(**fields: object) -> App:
    return App.model_validate({"id": "1", "key": "k1", "secret": "s1", **fields})


async def test_lookups_are_cached(cache: Cache) -> None:
    store = Store()
    await store.upsert(an_app())
    manager = CachedAppManager(store, cache, ttl=60)
    for _ in range(3):
        assert (await manager.find_by_key("k1")) == an_app()
        assert (await manager.find_by_id("1")) == an_app()
    assert store.lookups == 2  # one per entry, then the cache
    assert await manager.find_by_key("nope") is None
    assert await manager.find_by_key("nope") is None
    assert store.lookups == 3  # misses are cached too


async def test_changes_through_the_manager_take_effect_at_once(cache: Cache) -> None:
    store = Store()
    manager = CachedAppManager(store, cache, ttl=60)
    await manager.upsert(an_app())
    assert (found := await manager.find_by_key("k1")) is not None and found.enabled
    await manager.upsert(an_app(enabled=False, key="k2", secret="rotated"))
    assert await manager.find_by_key("k1") is None  # the old key is gone at once
    assert (found := await manager.find_by_id("1")) is not None
    assert (found.enabled, found.key, found.secret) == (False, "k2", "rotated")
    assert await manager.remove("1") is True
    assert await manager.find_by_key("k2") is None and await manager.find_by_id("1") is None


async def test_changes_in_the_store_take_effect_within_ttl(cache: Cache) -> None:
    store = Store()
    await store.upsert(an_app())
    manager = CachedAppManager(store, cache, ttl=0.3)
    assert (await manager.find_by_key("k1")) == an_app()
    assert await manager.find_by_key("new") is None
    await store.upsert(an_app(enabled=False))  # behind the manager's back
    await store.upsert(App(id="2", key="new", secret="s"))
    assert (found := await manager.find_by_key("k1")) is not None and found.enabled  # cached
    deadline = time.monotonic() + 0.3 + 0.5
    while (found := await manager.find_by_key("k1")) is not None and found.enabled:
        assert time.monotonic() < deadline, "the change never showed"
        await asyncio.sleep(0.05)
    assert await manager.find_by_key("new") is not None  # the cached miss expired too


async def test_an_unavailable_store_keeps_known_apps_working(cache: Cache) -> None:
    store = Store()
    await store.upsert(an_app())
    manager = CachedAppManager(store, cache, ttl=0.1)
    assert await manager.find_by_key("k1") is not None
    store.down = True
    await asyncio.sleep(0.15)  # the cache entry expired: only the last known copy is left
    started = time.monotonic()
    assert (await manager.find_by_key("k1")) == an_app()
    assert await manager.find_by_key("unknown") is None
    assert time.monotonic() - started < 0.5
    store.down = False
    assert await manager.find_by_key("unknown") is None  # no miss was cached while down
    assert store.lookups >= 2


async def test_ttl_zero_reaches_the_store_every_time(cache: Cache) -> None:
    store = Store()
    await store.upsert(an_app())
    manager = CachedAppManager(store, cache, ttl=0)
    for _ in range(3):
        await manager.find_by_key("k1")
    assert store.lookups == 3
