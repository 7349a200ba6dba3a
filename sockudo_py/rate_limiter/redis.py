"""The ``redis`` rate limiter: counters in Redis, shared by every node using it.

Needs the ``redis`` package (``pip install 'sockudo-py[redis]'``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

try:
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - exercised by hiding the package in a test
    raise ImportError(
        "the redis rate limiter needs the `redis` package: pip install 'sockudo-py[redis]'"
    ) from exc

from ..outage import OutageLog, redact_url
from .base import Decision, RateLimiter

if TYPE_CHECKING:
    from ..config import Config

logger = logging.getLogger("sockudo_py.rate_limiter.redis")

UNAVAILABLE = (RedisError, OSError)

# A limiter sits in front of every request: a down Redis must cost little, not seconds.
SOCKET_TIMEOUT = 1.0
RETRIES = 1

# KEYS[1] counter; ARGV cost, limit, window (ms). Returns {allowed, count, pttl}.
# Denied hits count nothing; the window (expiry) is set by the hit that creates the key.
HIT_SCRIPT = """
local cost = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local ttl = redis.call('PTTL', KEYS[1])
if count > 0 and ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], window)
  ttl = window
end
if count + cost > limit then
  if ttl < 0 then ttl = window end
  return {0, count, ttl}
end
count = redis.call('INCRBY', KEYS[1], cost)
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], window)
  ttl = window
end
return {1, count, ttl}
"""


class RedisRateLimiter(RateLimiter):
    """Fixed windows as Redis counters ``prefix + key`` (``rate_limiter.redis.prefix``,
    ``sockudo_rl:`` by default) whose expiry is the window; one Lua script per hit keeps the
    check and the count atomic across nodes.

    A Redis that is down or failing lets every hit through (fails open) rather than refusing
    clients for an infrastructure fault; one warning per 30 seconds (``OutageLog``) while
    it lasts (with the count of hits let through), an info line when Redis answers again.
    """

    def __init__(self, client: Redis, prefix: str = "sockudo_rl:", description: str = "redis"):
        self._client = client
        self._prefix = prefix
        self.description = description
        self._script: Any = client.register_script(HIT_SCRIPT)
        self.outage = OutageLog(
            logger, f"{description} rate limiter", "failing open: hits let through"
        )

    @classmethod
    def from_url(cls, url: str, prefix: str = "sockudo_rl:") -> RedisRateLimiter:
        client = Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
            retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), RETRIES),
        )
        return cls(client, prefix, f"redis {redact_url(url)}")

    async def start(self) -> None:
        await self.outage.probe(self._client.ping(), UNAVAILABLE)

    async def stop(self) -> None:
        await self.outage.close(self._client.aclose(), UNAVAILABLE)

    async def hit(self, key: str, limit: int, window_seconds: float, cost: int = 1) -> Decision:
        window_ms = max(1, round(window_seconds * 1000))
        try:
            allowed, count, ttl = await self._script(
                keys=[self._prefix + key], args=[cost, limit, window_ms]
            )
        except UNAVAILABLE as exc:
            self.outage.failed(exc)
            return Decision(True, limit, max(0, limit - cost), float(window_seconds))
        self.outage.succeeded()
        reset = max(int(ttl), 1) / 1000
        return Decision(bool(allowed), limit, max(0, limit - int(count)), reset)


def create_redis_rate_limiter(config: Config) -> RedisRateLimiter:
    section = config.rate_limiter.redis
    return RedisRateLimiter.from_url(config.redis_url(section.url_override), section.prefix)
