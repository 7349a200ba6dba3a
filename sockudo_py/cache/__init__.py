"""Cache drivers."""

from __future__ import annotations

from ..config import CacheConfig
from .base import Cache, channel_cache_key

__all__ = ["Cache", "channel_cache_key", "create_cache"]


def create_cache(config: CacheConfig) -> Cache:
    """The cache named by ``config.driver``."""
    if config.driver == "memory":
        from .memory import MemoryCache

        return MemoryCache(config.memory.max_capacity, config.memory.ttl)
    raise ValueError(f"cache.driver: {config.driver!r} is not available in this build")
