"""Adapters: delivery to sockets on this node and on every other node."""

from __future__ import annotations

from ..config import Config, RedisNode
from .base import Adapter, AdapterObserver, Answer, JoinResult

__all__ = ["Adapter", "AdapterObserver", "Answer", "JoinResult", "create_adapter"]


def create_adapter(config: Config, ipc_hub: str | None = None) -> Adapter:
    """The adapter named by ``config.adapter.driver``. Cluster drivers import their client
    package here, so a missing one fails at start-up naming the package to install. With
    ``ipc_hub`` (a worker of several), ``local`` means the workers' cluster through it."""
    section = config.adapter
    driver = section.driver
    if driver == "local" and ipc_hub is None:
        from .local import LocalAdapter

        return LocalAdapter(config.instance.process_id)
    from .horizontal import HorizontalAdapter, new_node_id
    from .transport import Transport

    node_id = new_node_id(config.instance.process_id)
    transport: Transport
    discovery = {}
    if driver == "local":
        from .ipc import REQUEST_TIMEOUT_MS, IpcTransport

        assert ipc_hub is not None
        transport = IpcTransport(ipc_hub, "", node_id)
        timeout = REQUEST_TIMEOUT_MS
    elif driver == "redis" and not section.redis.cluster_mode:
        from .redis import RedisTransport

        transport = RedisTransport(config.redis_url(), section.redis.prefix, node_id)
        timeout = section.redis.requests_timeout
    elif driver in ("redis", "redis-cluster"):
        from .redis_cluster import RedisClusterTransport

        redis = config.database.redis
        seeds = [RedisNode.from_seed(seed) for seed in section.cluster.nodes]
        addresses = [seed.address() for seed in seeds or redis.cluster_seeds()]
        if not addresses:
            raise ValueError(
                "adapter.cluster.nodes: a Redis Cluster needs seed nodes (REDIS_CLUSTER_NODES)"
            )
        transport = RedisClusterTransport(
            [(address.host, address.port) for address in addresses],
            section.cluster.prefix,
            node_id,
            sharded=section.cluster.use_sharded_pubsub,
            username=redis.cluster.username or addresses[0].username,
            password=redis.cluster.password or addresses[0].password,
        )
        timeout = section.cluster.request_timeout_ms
    elif driver == "nats":
        from .nats import NatsTransport

        nats = section.nats
        transport = NatsTransport(
            nats.servers,
            nats.prefix,
            node_id,
            connect_timeout=nats.connection_timeout_ms / 1000,
            username=nats.username,
            password=nats.password,
            token=nats.token,
        )
        timeout = nats.request_timeout_ms
        discovery = {
            "discovery_idle": nats.discovery_idle_wait_ms / 1000,
            "discovery_max": nats.discovery_max_wait_ms / 1000,
        }
    else:
        raise ValueError(f"adapter.driver: {driver!r} is not available in this build")
    return HorizontalAdapter(
        transport,
        request_timeout=timeout / 1000,
        health=config.cluster_health,
        fallback_to_local=section.fallback_to_local,
        **discovery,
    )
