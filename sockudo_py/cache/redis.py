"""The ``redis`` and ``redis-cluster`` caches: values kept in Redis or a Redis Cluster.

Needs the ``redis`` package (``pip install 'sockudo-py[redis]'``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

try:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import ClusterNode, RedisCluster
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import RedisClusterException, RedisError
except ImportError as exc:  # pragma: no cover - exercised by hiding the package in a test
    raise ImportError(
        "the redis and redis-cluster cache drivers need the `redis` package: "
        "pip install 'sockudo-py[redis]'"
    ) from exc

from ..outage import OutageLog, redact_url
from .base import Cache

if TYPE_CHECKING:
    from ..config import Config, RedisNode

logger = logging.getLogger("sockudo_py.cache.redis")

UNAVAILABLE = (RedisError, RedisClusterException, OSError)
"""What a call may raise while Redis is down or misbehaving (timeouts are ``OSError``s)."""

# A cache answers fast or not at all: a down Redis costs a caller a few quick retries, not the
# client's default of ten with back-off, and a silent one at most the socket timeout.
SOCKET_TIMEOUT = 2.0
RETRIES = 2


def _retry() -> Retry:
    return Retry(ExponentialBackoff(cap=0.1, base=0.01), RETRIES)


class RedisCache(Cache):
    """A ``Cache`` in Redis (``client`` is a ``redis.asyncio.Redis`` or ``RedisCluster``).

    Keys are ``prefix + key`` (``cache.redis.prefix``, ``sockudo_cache:`` by default); TTLs are
    kept by Redis in milliseconds (``SET ... PX`` / ``PTTL``). ``set`` without a ``ttl`` uses
    ``default_ttl``; the config has no Redis cache TTL, so the factory passes none and such
    keys never expire (callers wanting expiry pass a ``ttl``). A ``ttl`` (or default) of 0 or
    less also means no expiry, as in the memory cache.

    A Redis that is down or failing never raises out of ``get``/``set``/``delete``/``ttl``:
    ``get`` and ``ttl`` answer as for a missing key, ``set`` and ``delete`` are skipped. One
    warning is logged per 30 seconds (``OutageLog``) while calls fail (with the count of
    failed calls), and an info line when a call succeeds again; the client reconnects by
    itself on the next call. ``start`` checks the connection the same way and never fails.
    """

    def __init__(
        self,
        client: Redis | RedisCluster,
        prefix: str = "sockudo_cache:",
        default_ttl: float | None = None,
        description: str = "redis",
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._default_ttl = default_ttl
        self.description = description
        self.outage = OutageLog(logger, f"{description} cache", "serving misses meanwhile")

    @classmethod
    def from_url(
        cls, url: str, prefix: str = "sockudo_cache:", default_ttl: float | None = None
    ) -> RedisCache:
        """A cache on the single Redis at ``url`` (``redis://`` or ``rediss://``)."""
        client = Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
            retry=_retry(),
        )
        return cls(client, prefix, default_ttl, f"redis {redact_url(url)}")

    @classmethod
    def cluster(
        cls,
        seeds: list[RedisNode],
        prefix: str = "sockudo_cache:",
        default_ttl: float | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
    ) -> RedisCache:
        """A cache on the Redis Cluster found through ``seeds`` (a seed's ``host`` may be a
        ``redis(s)://[user:pass@]host:port`` URL: its credentials and scheme are used when
        ``username``/``password``/``tls`` are not given)."""
        if not seeds:
            raise ValueError("redis-cluster cache: no Redis Cluster seed nodes configured")
        nodes: list[ClusterNode] = []
        for seed in seeds:
            address = seed.address()
            tls = tls or address.tls
            username = username or address.username
            password = password or address.password
            nodes.append(ClusterNode(address.host, address.port))
        client = RedisCluster(
            startup_nodes=nodes,
            decode_responses=True,
            username=username,
            password=password,
            ssl=tls,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
            retry=_retry(),
        )
        names = ",".join(f"{node.host}:{node.port}" for node in nodes)
        return cls(client, prefix, default_ttl, f"redis-cluster {names}")

    async def start(self) -> None:
        await self.outage.probe(self._client.ping(), UNAVAILABLE, "ping")

    async def stop(self) -> None:
        await self.outage.close(self._client.aclose(), UNAVAILABLE)

    async def get(self, key: str) -> str | None:
        try:
            value = await self._client.get(self._prefix + key)
        except UNAVAILABLE as exc:
            self.outage.failed(exc, "get")
            return None
        self.outage.succeeded()
        return value.decode() if isinstance(value, bytes) else value  # str: decode_responses

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        ttl = self._default_ttl if ttl is None else ttl
        px = max(1, round(ttl * 1000)) if ttl is not None and ttl > 0 else None
        try:
            await self._client.set(self._prefix + key, value, px=px)
        except UNAVAILABLE as exc:
            self.outage.failed(exc, "set")
            return
        self.outage.succeeded()

    async def delete(self, key: str) -> None:
        try:
            await self._client.delete(self._prefix + key)
        except UNAVAILABLE as exc:
            self.outage.failed(exc, "delete")
            return
        self.outage.succeeded()

    async def ttl(self, key: str) -> float | None:
        try:
            millis: int = await self._client.pttl(self._prefix + key)
        except UNAVAILABLE as exc:
            self.outage.failed(exc, "ttl")
            return None
        self.outage.succeeded()
        if millis == -2:  # no such key
            return None
        if millis == -1:  # no expiry
            return -1
        return millis / 1000


def create_redis_cache(config: Config) -> RedisCache:
    """The ``redis`` cache of ``config`` (a cluster one for ``redis-cluster`` or
    ``cache.redis.cluster_mode``)."""
    section = config.cache.redis
    if config.cache.driver == "redis-cluster" or section.cluster_mode:
        seeds = config.database.redis.cluster_seeds(config.adapter.cluster.nodes)
        if not seeds:
            raise ValueError(
                f"cache.driver: {config.cache.driver!r} (cluster mode) needs Redis Cluster seeds "
                "in database.redis.cluster.nodes or adapter.cluster.nodes (REDIS_CLUSTER_NODES)"
            )
        connection = config.database.redis.cluster
        return RedisCache.cluster(
            seeds,
            section.prefix,
            username=connection.username,
            password=connection.password,
            tls=connection.use_tls,
        )
    return RedisCache.from_url(config.redis_url(section.url_override), section.prefix)
