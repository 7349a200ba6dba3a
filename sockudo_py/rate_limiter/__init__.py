"""Rate limiter drivers (fixed windows) and the client-IP rule of the per-IP limits."""

from __future__ import annotations

from ..config import Config
from .base import Decision, NoRateLimiter, RateLimiter, client_ip

__all__ = ["Decision", "NoRateLimiter", "RateLimiter", "client_ip", "create_rate_limiter"]


def create_rate_limiter(config: Config) -> RateLimiter:
    """The limiter named by ``rate_limiter.driver``; ``rate_limiter.enabled`` only switches
    the per-IP limits (the per-app ones apply whenever an app sets them). ``redis`` connects
    to ``config.redis_url(rate_limiter.redis.url_override)``; a missing ``redis`` package
    raises ``ImportError`` naming it."""
    section = config.rate_limiter
    if section.driver == "memory":
        from .memory import MemoryRateLimiter

        return MemoryRateLimiter()
    if section.driver == "redis":
        from .redis import create_redis_rate_limiter

        return create_redis_rate_limiter(config)
    raise ValueError(f"rate_limiter.driver: {section.driver!r} is not available in this build")
