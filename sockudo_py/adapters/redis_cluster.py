"""The ``redis-cluster`` adapter's transport: sharded pub/sub on a Redis Cluster."""

from __future__ import annotations

from .redis import RedisTransport, aioredis

try:
    from redis.asyncio.cluster import ClusterNode, RedisCluster
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the redis-cluster adapter needs the redis package: pip install 'sockudo-py[redis]'"
    ) from exc


class RedisClusterTransport(RedisTransport):
    """Pub/sub on a Redis Cluster. Every channel name carries the hash tag ``{prefix}``, so
    all of the adapter's channels live in one slot: the transport finds that slot's master
    from the seed nodes and talks to it alone, with sharded pub/sub (``SSUBSCRIBE`` /
    ``SPUBLISH``, Redis 7+) when ``sharded`` is true (or None and the server has it), else
    classic pub/sub, which the cluster forwards to every node. A failover or slot move drops
    the subscription and the adapter reconnects to the new master."""

    def __init__(
        self,
        seeds: list[tuple[str, int]],
        prefix: str,
        node_id: str,
        sharded: bool | None = None,
        connect_timeout: float = 5.0,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        super().__init__("", prefix, node_id, connect_timeout, username, password)
        self.seeds = seeds
        self.sharded = sharded

    @property
    def name(self) -> str:
        return "redis-cluster"

    def channel(self, target: str | None) -> str:
        tag = "{" + self.prefix + "}"
        return f"{tag}#broadcast" if target is None else f"{tag}#node:{target}"

    async def _server_url(self) -> str:
        credentials = {key: value for key, value in self.credentials.items() if value}
        cluster = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in self.seeds],
            socket_connect_timeout=self.connect_timeout,
            **credentials,
        )
        try:
            await cluster.initialize()
            node = cluster.get_node_from_key(self.channel(None))
            if node is None:
                raise ConnectionError("no master serves the adapter's slot")
            url = f"redis://{node.host}:{node.port}/0"
        finally:
            await cluster.aclose()
        sharded = self.sharded
        if sharded is None:
            probe = aioredis.Redis.from_url(url, **credentials)
            try:
                version = (await probe.info("server"))["redis_version"]
            finally:
                await probe.aclose()
            sharded = int(str(version).split(".")[0]) >= 7
        self.subscribe_command = "ssubscribe" if sharded else "subscribe"
        self.publish_command = "SPUBLISH" if sharded else "PUBLISH"
        return url
