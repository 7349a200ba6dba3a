"""From config.json and Sockudo's environment variables to a cluster adapter: which broker,
which prefix, which timeouts. The factory is checked without connecting; the last test
starts a redis-cluster adapter to see sharded pub/sub in use on the real cluster."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from sockudo_py.adapters import create_adapter
from sockudo_py.adapters.horizontal import HorizontalAdapter
from sockudo_py.adapters.nats import NatsTransport
from sockudo_py.adapters.redis import RedisTransport
from sockudo_py.adapters.redis_cluster import RedisClusterTransport
from sockudo_py.config import Config, load_config


def adapter_from(tmp_path: Path, config: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    adapter = create_adapter(load_config(str(path), env=env or {}))
    assert isinstance(adapter, HorizontalAdapter)
    return adapter


def test_redis_from_database_redis_fields(tmp_path: Path) -> None:
    adapter = adapter_from(
        tmp_path,
        {
            "adapter": {"driver": "redis", "redis": {"prefix": "p:", "requests_timeout": 750}},
            "database": {"redis": {"host": "10.1.2.3", "port": 6380, "db": 2, "password": "pw"}},
        },
    )
    transport = adapter.transport
    assert isinstance(transport, RedisTransport)
    assert transport.url == "redis://:pw@10.1.2.3:6380/2"
    assert transport.channel(None) == "p:#broadcast"
    assert transport.channel("n1") == "p:#node:n1"
    assert adapter.request_timeout == 0.75


def test_redis_url_env_wins_and_instance_names_the_node(tmp_path: Path) -> None:
    env = {
        "ADAPTER_DRIVER": "redis",
        "REDIS_URL": "redis://cache.internal:6390/0",
        "INSTANCE_PROCESS_ID": "node-a",
    }
    adapter = adapter_from(tmp_path, {"database": {"redis": {"host": "ignored"}}}, env)
    assert adapter.transport.url == "redis://cache.internal:6390/0"
    assert adapter.node_id == "node-a"


@pytest.mark.parametrize(
    "config",
    [
        {"adapter": {"driver": "redis-cluster", "cluster": {"nodes": ["h1:7000", "redis://h2:7001"]}}},
        {
            "adapter": {"driver": "redis-cluster"},
            "database": {"redis": {"cluster_nodes": [{"host": "h1", "port": 7000},
                                                     {"host": "h2", "port": 7001}]}},
        },
        {"adapter": {"driver": "redis", "redis": {"cluster_mode": True}},
         "database": {"redis": {"cluster": {"nodes": [{"host": "h1", "port": 7000},
                                                      {"host": "h2", "port": 7001}]}}}},
    ],
    ids=["adapter.cluster.nodes", "database.redis.cluster_nodes", "redis cluster_mode"],
)  # fmt: skip
def test_redis_cluster_seeds(tmp_path: Path, config: dict[str, Any]) -> None:
    adapter = adapter_from(tmp_path, config)
    transport = adapter.transport
    assert isinstance(transport, RedisClusterTransport)
    assert transport.seeds == [("h1", 7000), ("h2", 7001)]
    assert transport.channel(None) == "{sockudo_adapter:}#broadcast"  # one slot for all


def test_redis_cluster_nodes_env(tmp_path: Path) -> None:
    env = {"ADAPTER_DRIVER": "redis-cluster", "REDIS_CLUSTER_NODES": "h1:7000,h2:7001"}
    assert adapter_from(tmp_path, {}, env).transport.seeds == [("h1", 7000), ("h2", 7001)]


def test_nats_servers_env_and_timeouts(tmp_path: Path) -> None:
    env = {
        "ADAPTER_DRIVER": "nats",
        "NATS_SERVERS": "nats://n1:4222,nats://n2:4222",
        "NATS_PREFIX": "chat",
        "NATS_REQUEST_TIMEOUT_MS": "1500",
    }
    adapter = adapter_from(tmp_path, {}, env)
    transport = adapter.transport
    assert isinstance(transport, NatsTransport)
    assert transport.servers == ["nats://n1:4222", "nats://n2:4222"]
    assert transport.subject(None) == "chat.broadcast"
    assert transport.subject("n1") == "chat.node.n1"
    assert adapter.request_timeout == 1.5


def test_cluster_health_from_either_place(tmp_path: Path) -> None:
    health = {"node_timeout_ms": 9000, "heartbeat_interval_ms": 3000, "cleanup_interval_ms": 3000}
    nested = {"adapter": {"driver": "nats", "cluster_health": health}}
    assert adapter_from(tmp_path, nested).health.node_timeout_ms == 9000
    env = {"ADAPTER_DRIVER": "nats", "CLUSTER_HEALTH_HEARTBEAT_INTERVAL": "2000"}
    assert adapter_from(tmp_path, {}, env).health.heartbeat_interval_ms == 2000


def test_redis_cluster_without_seeds_is_a_clear_error() -> None:
    config = Config.model_validate({"adapter": {"driver": "redis-cluster"}})
    with pytest.raises(ValueError, match=r"adapter\.cluster\.nodes"):
        create_adapter(config)


async def test_redis_cluster_uses_sharded_pubsub(redis_cluster: Any) -> None:
    uid = uuid.uuid4().hex[:8]
    config = Config.model_validate(
        {"adapter": {"driver": "redis-cluster",
                     "cluster": {"nodes": redis_cluster.seeds, "prefix": f"sharded-{uid}:"}}}
    )  # fmt: skip
    adapter = create_adapter(config)
    assert isinstance(adapter, HorizontalAdapter)
    await adapter.start()
    try:
        transport = adapter.transport
        assert isinstance(transport, RedisClusterTransport)
        assert transport.publish_command == "SPUBLISH"
        channels: set[bytes] = set()
        for url in redis_cluster.urls:  # the slot's master lists our shard channels
            client = Redis.from_url(url)
            channels |= set(await client.execute_command("PUBSUB", "SHARDCHANNELS"))
            await client.aclose()
        assert transport.channel(None).encode() in channels
    finally:
        await adapter.stop()
