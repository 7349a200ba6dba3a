"""``CachedAppManager``: lookups of a database app manager through the cache driver."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from ..cache.base import Cache
from ..config import App
from .base import AppManager, AppManagerUnavailable

log = logging.getLogger("sockudo_py.app_manager")

MISS = "-"
"""What the cache holds for an id or key the store does not have."""
MISS_TTL = 5.0
LAST_KNOWN_LIMIT = 10_000


def app_cache_keys(app_id: str | None = None, key: str | None = None) -> list[str]:
    """The cache entries of an app: Sockudo's ``app:id:{id}`` and ``app:key:{key}``."""
    keys = [] if app_id is None else [f"app:id:{app_id}"]
    return keys if key is None else [*keys, f"app:key:{key}"]


class CachedAppManager(AppManager):
    """Wraps a database ``store``: a lookup is answered from ``cache`` for ``ttl`` seconds
    (misses for at most ``MISS_TTL``), so connecting costs no database round-trip.

    Freshness: a change made in the store itself takes effect within ``ttl`` seconds;
    ``upsert`` and ``remove`` through this manager (the ``apps`` command) clear the app's
    entries at once, on every node when the cache is shared (redis). While the store is
    unavailable, apps this process has looked up before keep working from their last known
    version, and other lookups answer ``None`` (unknown) at once instead of failing.
    ``ttl`` 0 turns caching off (every lookup reaches the store).
    """

    def __init__(self, store: AppManager, cache: Cache, ttl: float) -> None:
        super().__init__(store.seed)
        self.store, self.cache, self.ttl = store, cache, ttl
        self._last_known: dict[str, App] = {}
        self._outage_logged_at = 0.0

    async def start(self, retry: bool = True) -> None:
        await self.store.start(retry)
        self.unstored_fields = self.store.unstored_fields

    async def stop(self) -> None:
        await self.store.stop()

    async def find_by_id(self, app_id: str) -> App | None:
        return await self._find(app_cache_keys(app_id=app_id)[0], app_id, self.store.find_by_id)

    async def find_by_key(self, key: str) -> App | None:
        return await self._find(app_cache_keys(key=key)[0], key, self.store.find_by_key)

    async def _find(
        self, entry: str, value: str, lookup: Callable[[str], Awaitable[App | None]]
    ) -> App | None:
        if self.ttl > 0:
            cached = await self.cache.get(entry)
            if cached is not None:
                return None if cached == MISS else App.model_validate_json(cached)
        try:
            app = await lookup(value)
        except AppManagerUnavailable as exc:
            self._log_outage(exc)
            return self._last_known.get(entry)
        if app is None:
            self._last_known.pop(entry, None)
            if self.ttl > 0:
                await self.cache.set(entry, MISS, min(self.ttl, MISS_TTL))
            return None
        self._remember(entry, app)
        if self.ttl > 0:
            await self.cache.set(entry, app.model_dump_json(), self.ttl)
        return app

    def _remember(self, entry: str, app: App) -> None:
        self._last_known.pop(entry, None)
        self._last_known[entry] = app
        if len(self._last_known) > LAST_KNOWN_LIMIT:
            del self._last_known[next(iter(self._last_known))]

    def _log_outage(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._outage_logged_at > 30:
            self._outage_logged_at = now
            log.error("app manager: %s; known apps are served from memory", exc)

    async def all_apps(self) -> list[App]:
        return await self.store.all_apps()

    async def upsert(self, app: App) -> None:
        old = await self.store.find_by_id(app.id)
        await self.store.upsert(app)
        await self.invalidate(app.id, app.key, old.key if old is not None else None)

    async def remove(self, app_id: str) -> bool:
        old = await self.store.find_by_id(app_id)
        removed = await self.store.remove(app_id)
        await self.invalidate(app_id, old.key if old is not None else None)
        return removed

    async def invalidate(self, app_id: str, *keys: str | None) -> None:
        """Forget the cached entries of ``app_id`` and of each of ``keys``."""
        entries = app_cache_keys(app_id=app_id)
        entries += [app_cache_keys(key=key)[0] for key in keys if key is not None]
        for entry in entries:
            self._last_known.pop(entry, None)
            await self.cache.delete(entry)
