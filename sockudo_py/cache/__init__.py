"""Cache drivers."""

from __future__ import annotations

from ..config import Config
from .base import Cache, channel_cache_key

__all__ = ["Cache", "channel_cache_key", "create_cache"]


def create_cache(config: Config) -> Cache:
    """The cache named by ``config.cache.driver``. The Redis drivers read the connection from
    ``database.redis`` (see ``sockudo_py.cache.redis.create_redis_cache``); a missing ``redis``
    package raises ``ImportError`` naming it."""
    driver = config.cache.driver
    if driver == "memory":
        from .memory import MemoryCache

        return MemoryCache(config.cache.memory.max_capacity, config.cache.memory.ttl)
    if driver in ("redis", "redis-cluster"):
        from .redis import create_redis_cache

        return create_redis_cache(config)
    raise ValueError(f"cache.driver: {driver!r} is not available in this build")
