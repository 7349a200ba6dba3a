"""What only the Redis caches promise: the factory's choice of client and connection, the key
prefix, a default TTL, and that an unreachable Redis never raises to the caller. The rest of
their behaviour is the cache contract (tests/contracts/test_cache_contract.py)."""

from __future__ import annotations

import logging
import sys
import time
import uuid
from typing import Any

import pytest
from interop_server import free_port
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis_cluster import start_redis_server

from sockudo_py.cache import Cache, create_cache
from sockudo_py.cache.memory import MemoryCache
from sockudo_py.cache.redis import RedisCache
from sockudo_py.config import Config

LOCAL_REDIS = "redis://127.0.0.1:6379/0"
LOGGER = "sockudo_py.cache.redis"


def redis_cache(fragment: dict[str, Any]) -> RedisCache:
    cache = create_cache(Config.model_validate(fragment))
    assert isinstance(cache, RedisCache)
    return cache


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


# --------------------------------------------------------------------------- factory


def test_redis_driver_uses_the_database_url_or_the_override() -> None:
    cache = redis_cache({"cache": {"driver": "redis"}, "database": {"redis": {"port": 6390}}})
    assert isinstance(cache._client, Redis)
    assert cache._client.connection_pool.connection_kwargs["port"] == 6390
    cache = redis_cache(
        {
            "cache": {"driver": "redis", "redis": {"url_override": "redis://10.1.2.3:7000/2"}},
            "database": {"redis": {"url": "redis://127.0.0.1:6379/0"}},
        }
    )
    assert isinstance(cache._client, Redis)
    kwargs = cache._client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("10.1.2.3", 7000, 2)


@pytest.mark.parametrize(
    "fragment",
    [
        {"cache": {"driver": "redis-cluster"}},
        {"cache": {"driver": "redis", "redis": {"cluster_mode": True}}},
    ],
    ids=["redis-cluster", "cluster_mode"],
)
def test_cluster_seeds_from_database_redis_else_adapter_cluster(fragment: dict[str, Any]) -> None:
    nodes = [{"host": "10.0.0.1", "port": 7001}, {"host": "redis://10.0.0.2:7002", "port": 1}]
    cache = redis_cache({**fragment, "database": {"redis": {"cluster": {"nodes": nodes}}}})
    assert isinstance(cache._client, RedisCluster)
    seeds = cache._client.nodes_manager.startup_nodes
    assert sorted(seeds) == ["10.0.0.1:7001", "10.0.0.2:7002"]

    seeds_only = {**fragment, "adapter": {"cluster": {"nodes": ["10.0.0.3:7003", "10.0.0.4"]}}}
    cache = redis_cache(seeds_only)
    assert isinstance(cache._client, RedisCluster)
    assert sorted(cache._client.nodes_manager.startup_nodes) == ["10.0.0.3:7003", "10.0.0.4:6379"]


def test_cluster_credentials_come_from_the_section_or_the_seed_url() -> None:
    cache = redis_cache(
        {
            "cache": {"driver": "redis-cluster"},
            "adapter": {"cluster": {"nodes": ["redis://user:p%40ss@10.0.0.5:7005"]}},
        }
    )
    kwargs = cache._client.get_connection_kwargs()
    assert (kwargs["username"], kwargs["password"]) == ("user", "p@ss")
    cache = redis_cache(
        {
            "cache": {"driver": "redis-cluster"},
            "database": {
                "redis": {
                    "cluster": {
                        "nodes": [{"host": "10.0.0.6", "port": 7006}],
                        "username": "u",
                        "password": "pw",
                    }
                }
            },
        }
    )
    kwargs = cache._client.get_connection_kwargs()
    assert (kwargs["username"], kwargs["password"]) == ("u", "pw")


def test_cluster_without_seeds_is_a_start_up_error() -> None:
    with pytest.raises(ValueError, match=r"database\.redis\.cluster\.nodes"):
        create_cache(Config.model_validate({"cache": {"driver": "redis-cluster"}}))


def test_missing_redis_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "redis" or m.startswith("redis.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "sockudo_py.cache.redis")
    with pytest.raises(ImportError, match=r"pip install 'sockudo-py\[redis\]'"):
        create_cache(Config.model_validate({"cache": {"driver": "redis"}}))


# --------------------------------------------------------------------------- against Redis


async def test_keys_carry_the_prefix() -> None:
    prefix = f"test_{uuid.uuid4().hex[:8]}:"
    cache = redis_cache(
        {
            "cache": {"driver": "redis", "redis": {"prefix": prefix}},
            "database": {"redis": {"url": LOCAL_REDIS}},
        }
    )
    raw = Redis.from_url(LOCAL_REDIS, decode_responses=True)
    try:
        await cache.start()
        await cache.set("k", "v", 30)
        assert await raw.get(prefix + "k") == "v"
        await cache.delete("k")
        assert await raw.exists(prefix + "k") == 0
    finally:
        await cache.stop()
        await raw.aclose()


@pytest.mark.parametrize("driver", ["memory", "redis"])
async def test_default_ttl_applies_when_set_without_ttl(driver: str) -> None:
    cache: Cache = (
        MemoryCache(default_ttl=300)
        if driver == "memory"
        else RedisCache.from_url(LOCAL_REDIS, f"test_{uuid.uuid4().hex[:8]}:", default_ttl=300)
    )
    try:
        await cache.set("k", "v")
        remaining = await cache.ttl("k")
        assert remaining is not None and 299 < remaining <= 300
        await cache.set("k", "v", 10)  # an explicit ttl wins
        remaining = await cache.ttl("k")
        assert remaining is not None and 0 < remaining <= 10
        await cache.delete("k")
    finally:
        await cache.stop()


@pytest.mark.parametrize("driver", ["redis", "redis-cluster"])
async def test_unreachable_redis_is_a_miss_and_never_raises(
    driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens there
    cache = redis_cache(
        {
            "cache": {"driver": driver},
            "database": {
                "redis": {
                    "url": f"redis://127.0.0.1:{port}/0",
                    "cluster": {"nodes": [{"host": "127.0.0.1", "port": port}]},
                }
            },
        }
    )
    caplog.set_level(logging.INFO, LOGGER)
    started = time.monotonic()
    await cache.start()  # logs, does not raise
    for _ in range(3):
        assert await cache.get("k") is None
        await cache.set("k", "v")
        await cache.set("k", "v", 5)
        await cache.delete("k")
        assert await cache.ttl("k") is None
    await cache.stop()
    assert time.monotonic() - started < 10
    warned = warnings_of(caplog)
    assert len(warned) == 1, [r.getMessage() for r in warned]  # rate-limited, not per call
    assert str(port) in warned[0].getMessage()


async def test_recovers_when_redis_comes_back(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    port = free_port()
    with start_redis_server(port) as server:
        cache = RedisCache.from_url(server.url)
        await cache.start()
        await cache.set("k", "v")
        assert await cache.get("k") == "v"
        server.stop()
        assert await cache.get("k") is None
        await cache.set("k", "w")  # skipped, no error
        assert len(warnings_of(caplog)) == 1
    with start_redis_server(port):  # same port, empty data
        assert await cache.get("k") is None
        await cache.set("k", "x")
        assert await cache.get("k") == "x"
        assert any("reachable again" in r.getMessage() for r in caplog.records)
        await cache.stop()
