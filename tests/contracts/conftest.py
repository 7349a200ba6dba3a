"""Driver fixtures of the contract suites: each fixture is parametrized over every driver of
its family, and the suites run unchanged against each one.

Adding a driver: append one ``pytest.param`` to ``ADAPTERS``, ``APP_MANAGERS``, ``CACHES`` or
``QUEUES`` below. Its value is a ``Config`` fragment (as in config.json) selecting the driver
and pointing it at the real service, e.g.
``pytest.param({"cache": {"driver": "redis"}, "database": {"redis": {"url": REDIS_URL}}},
id="redis")``. No skip marks: the service must be there (``make test`` starts it), and an
unreachable one fails the test, as CI requires. Drivers are built through the family's factory, so
nothing else changes. Tests use per-test unique app ids and cache keys (``uid``), so a shared
service needs no flushing between tests; an app-manager driver whose store is not cleared by
seeding should still only be asserted on the apps it was given.

Redis Cluster: a fragment may hold ``REDIS_CLUSTER_NODES`` (for ``database.redis.cluster.nodes``)
or ``REDIS_CLUSTER_SEEDS`` (for ``adapter.cluster.nodes``); a fixture passes its param through
``resolve_fragment(request, request.param)``, which fills them in from the session fixture
``redis_cluster`` (a throwaway 3-master cluster, tests/redis_cluster.py, started on first use).

AWS (moto): a fragment may hold ``MOTO_ENDPOINT`` for an ``endpoint_url`` (with the dummy
``MOTO_CREDENTIALS``); ``resolve_fragment`` fills it with the URL of the session fixture
``moto_server`` (tests/moto_server.py, started on first use).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
from fragments import FAST_QUEUE, resolve
from moto_server import MOTO_CREDENTIALS, MOTO_ENDPOINT
from mysql_store import CONTRACT_TABLE, SOKETI_TABLE, mysql_fragment, resolve_mysql
from redis_cluster import REDIS_CLUSTER_NODES, REDIS_CLUSTER_SEEDS

from sockudo_py.adapters import Adapter, create_adapter
from sockudo_py.app_manager import AppManager, create_app_manager
from sockudo_py.cache import Cache, create_cache
from sockudo_py.config import App, Config
from sockudo_py.queue import Queue, create_queue
from sockudo_py.rate_limiter import RateLimiter, create_rate_limiter

REDIS_URL = "redis://127.0.0.1:6379/0"

ADAPTERS = [
    pytest.param({"adapter": {"driver": "local"}}, id="local"),
    pytest.param(
        {"adapter": {"driver": "redis"}, "database": {"redis": {"url": "redis://127.0.0.1:6379"}}},
        id="redis",
    ),
    pytest.param(
        {"adapter": {"driver": "redis-cluster", "cluster": {"nodes": REDIS_CLUSTER_SEEDS}}},
        id="redis-cluster",
    ),
    pytest.param(
        {"adapter": {"driver": "nats", "nats": {"servers": ["nats://127.0.0.1:4222"]}}},
        id="nats",
    ),
]
"""Every adapter driver. The cluster ones (all but ``local``) also run the multi-node suite
``test_cluster_contract.py``, and must reach their broker: ``fallback_to_local`` is off."""

APP_MANAGERS = [
    pytest.param({"app_manager": {"driver": "memory"}}, id="memory"),
    pytest.param(
        {
            "app_manager": {"driver": "dynamodb"},
            "database": {
                "dynamodb": {
                    **MOTO_CREDENTIALS,
                    "endpoint_url": MOTO_ENDPOINT,
                    "table_name": f"sockudo-apps-{uuid.uuid4().hex[:8]}",  # one per session
                }
            },
        },
        id="dynamodb",
    ),
    # MariaDB at 127.0.0.1:3306 (tests/mysql_store.py): Sockudo's table, created by the driver,
    # and soketi's, created by the ``mysql_tables`` session fixture; both dropped at the end.
    pytest.param(
        {"app_manager": {"driver": "mysql"}, "database": {"mysql": mysql_fragment(CONTRACT_TABLE)}},
        id="mysql",
    ),
    pytest.param(
        {
            "app_manager": {"driver": "mysql"},
            "database": {"mysql": mysql_fragment(SOKETI_TABLE, "soketi")},
        },
        id="mysql-soketi",
    ),
]

# ``set(key, value)`` without a ttl means "no expiry" only on a driver without a default TTL;
# the memory driver applies ``cache.memory.ttl`` (300 s unless configured), so it runs here
# with 0 (no default) and the suite can pin ``ttl() == -1`` for keys set without expiry.
# The Redis caches have no default TTL (the config has no key for one).
CACHES = [
    pytest.param({"cache": {"driver": "memory", "memory": {"ttl": 0}}}, id="memory"),
    pytest.param(
        {"cache": {"driver": "redis"}, "database": {"redis": {"url": REDIS_URL}}}, id="redis"
    ),
    pytest.param(
        {
            "cache": {"driver": "redis-cluster"},
            "database": {"redis": {"cluster": {"nodes": REDIS_CLUSTER_NODES}}},
        },
        id="redis-cluster",
    ),
]

# Each test gets its own Redis prefix (see the ``rate_limiter`` fixture), so counters of other
# tests and sessions are never in sight.
RATE_LIMITERS = [
    pytest.param({"rate_limiter": {"enabled": True, "driver": "memory"}}, id="memory"),
    pytest.param(
        {
            "rate_limiter": {"enabled": True, "driver": "redis"},
            "database": {"redis": {"url": REDIS_URL}},
        },
        id="redis",
    ),
]


def resolve_fragment(request: pytest.FixtureRequest, fragment: dict[str, Any]) -> dict[str, Any]:
    """``fragment`` with its service markers (Redis Cluster, moto) filled in, and the
    services it names (MariaDB) prepared."""
    return resolve(request, resolve_mysql(request, fragment))


def config_of(fragment: dict[str, Any]) -> Config:
    return Config.model_validate(fragment)


@pytest.fixture
def uid() -> str:
    """A short unique tag for this test's app ids and cache keys."""
    return uuid.uuid4().hex[:10]


Driver = TypeVar("Driver", Adapter, AppManager, Cache, RateLimiter)


@contextlib.asynccontextmanager
async def running(driver: Driver) -> AsyncIterator[Driver]:
    """``driver`` started for the block, stopped after it."""
    await driver.start()
    try:
        yield driver
    finally:
        await driver.stop()


CLUSTER_ADAPTERS = [param for param in ADAPTERS if param.id != "local"]

# Small cluster_health intervals, so dead-node tests take a second, not half a minute.
FAST_HEALTH = {"heartbeat_interval_ms": 100, "node_timeout_ms": 600, "cleanup_interval_ms": 100}

ClusterFactory = Callable[..., Awaitable[list[Adapter]]]


@pytest.fixture(params=CLUSTER_ADAPTERS)
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[ClusterFactory]:
    """``await cluster(n, **adapter_overrides)``: ``n`` started nodes of one cluster driver,
    sharing a prefix no other test uses; more calls add nodes to the same cluster."""
    nodes: list[Adapter] = []

    async def make(count: int, **overrides: Any) -> list[Adapter]:
        config = adapter_config(request)
        config.cluster_health = config.cluster_health.model_validate(FAST_HEALTH)
        for key, value in overrides.items():
            setattr(config.adapter, key, value)
        added = [create_adapter(config) for _ in range(count)]
        for node in added:
            await node.start()
            nodes.append(node)
        return added

    try:
        yield make
    finally:
        for node in reversed(nodes):
            await node.stop()


@pytest.fixture(params=ADAPTERS)
async def adapter(request: pytest.FixtureRequest) -> AsyncIterator[Adapter]:
    async with running(create_adapter(adapter_config(request))) as driver:
        yield driver


def adapter_config(request: pytest.FixtureRequest) -> Config:
    """The ``Config`` of an ``ADAPTERS`` param, with the broker required at start."""
    config = config_of(resolve_fragment(request, request.param))
    config.adapter.fallback_to_local = False
    prefix = f"test-{request.getfixturevalue('uid')}:"  # no other test's nodes in sight
    adapter = config.adapter
    adapter.redis.prefix = adapter.cluster.prefix = adapter.nats.prefix = prefix
    return config


AppManagerFactory = Callable[[list[App]], Awaitable[AppManager]]


@pytest.fixture(params=APP_MANAGERS)
async def app_manager_factory(request: pytest.FixtureRequest) -> AsyncIterator[AppManagerFactory]:
    """``await app_manager_factory([App, ...])``: a started driver holding those apps, seeded
    the way a deployment seeds it (``app_manager.array.apps``, upserted at start-up)."""
    started: list[AppManager] = []

    async def make(apps: list[App]) -> AppManager:
        config = config_of(resolve_fragment(request, request.param))
        config.app_manager.array.apps = list(apps)
        manager = create_app_manager(config)
        await manager.start()
        started.append(manager)
        return manager

    try:
        yield make
    finally:
        for manager in started:
            await manager.stop()


@pytest.fixture(params=CACHES)
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    fragment = resolve_fragment(request, request.param)
    async with running(create_cache(config_of(fragment))) as driver:
        yield driver


@pytest.fixture(params=RATE_LIMITERS)
async def rate_limiter(request: pytest.FixtureRequest, uid: str) -> AsyncIterator[RateLimiter]:
    config = config_of(resolve_fragment(request, request.param))
    config.rate_limiter.redis.prefix = f"test-rl-{uid}:"
    async with running(create_rate_limiter(config)) as driver:
        yield driver


QUEUES = [
    pytest.param({"queue": {"driver": "memory"}}, id="memory"),
    pytest.param(
        {"queue": {"driver": "redis"}, "database": {"redis": {"url": REDIS_URL}}}, id="redis"
    ),
    pytest.param(
        {
            "queue": {"driver": "redis", "redis": {"cluster_mode": True}},
            "database": {"redis": {"cluster": {"nodes": REDIS_CLUSTER_NODES}}},
        },
        id="redis-cluster",
    ),
    pytest.param(
        {
            "queue": {
                "driver": "sqs",
                "sqs": {
                    **MOTO_CREDENTIALS,
                    "endpoint_url": MOTO_ENDPOINT,
                    "visibility_timeout": 2,
                    "wait_time_seconds": 1,
                },
            }
        },
        id="sqs",
    ),
]
"""Every queue driver (redis-cluster: the redis driver with ``cluster_mode``); the fixture
adds ``FAST_QUEUE`` and a per-test Redis prefix (tests also use per-test queue names, which is
what keeps SQS queues apart)."""


class QueueFactory:
    """``make()``: a new, not yet started ``Queue`` of the param's driver, on the same
    store as the others of this test (``durable``: whether a second instance sees the
    first's jobs, i.e. not ``memory``). Every queue made is stopped at teardown."""

    def __init__(self, config: Config, durable: bool) -> None:
        self.config, self.durable = config, durable
        self.made: list[Queue] = []

    def make(self) -> Queue:
        queue = create_queue(self.config)
        assert queue is not None
        self.made.append(queue)
        return queue


def queue_config(request: pytest.FixtureRequest) -> Config:
    """The ``Config`` of a ``QUEUES`` param with fast timings and a per-test Redis prefix."""
    fragment = resolve_fragment(request, request.param)
    fragment["queue"]["reliability"] = dict(FAST_QUEUE)
    fragment["queue"].setdefault("redis", {})["prefix"] = (
        f"test-queue-{request.getfixturevalue('uid')}:"
    )
    return config_of(fragment)


@pytest.fixture(params=QUEUES)
async def queue_factory(request: pytest.FixtureRequest) -> AsyncIterator[QueueFactory]:
    durable = request.param["queue"]["driver"] != "memory"
    factory = QueueFactory(queue_config(request), durable)
    try:
        yield factory
    finally:
        for queue in factory.made:
            await queue.stop()
