"""The ``redis`` queue: durable, at-least-once job queues in Redis (or a Redis Cluster).

Needs the ``redis`` package (``pip install 'sockudo-py[redis]'``).

Keys of queue ``name`` (``P`` = ``queue.redis.prefix``, ``sockudo_queue:``), all in one hash
slot through the ``{name}`` hash tag, so every script below runs on one Redis Cluster node:

* ``P{name}:pending`` sorted set: job ids, score = when visible (Unix ms, Redis' clock);
  ready and delayed jobs alike.
* ``P{name}:leased`` sorted set: job ids in flight, score = lease expiry (Unix ms).
* ``P{name}:dead`` sorted set: dead-letter ids, score = when they died.
* ``P{name}:job:<id>`` hash: ``data`` (payload JSON), ``enqueued_at`` (ms), ``attempts``,
  ``token`` (the current lease's), ``error``.

Every state change is one Lua script, timed by Redis' ``TIME`` (nodes' clocks do not matter).
Fetching first moves leases that expired (a worker that died, or stalled past
``lease_duration_ms`` without renewing) back to ``pending`` (at most ``stalled_batch_size`` per
fetch), then leases due jobs with a fresh token. Ack, retry, dead-letter and renew act only if
the caller still holds the lease's token, so a worker whose lease was taken over cannot undo
the new holder's work. A running handler's lease is renewed every ``lease_renew_interval_ms``.
A consumer polls every ``worker_poll_interval_ms`` while its queue is empty.

Cluster: ``queue.redis.cluster_mode`` connects to the Redis Cluster of
``database.redis.cluster.nodes`` (or ``adapter.cluster.nodes``).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

try:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import ClusterNode, RedisCluster
except ImportError as exc:  # pragma: no cover - exercised by hiding the package
    raise ImportError(
        "queue.driver 'redis' needs the `redis` package: pip install 'sockudo-py[redis]'"
    ) from exc

from ..config import QueueReliabilityConfig
from .base import Job, Queue

if TYPE_CHECKING:
    from ..config import Config

SOCKET_TIMEOUT = 5.0

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: pending, job ; ARGV: id, data, delay_ms
_ENQUEUE = (
    _NOW
    + """
redis.call('HSET', KEYS[2], 'data', ARGV[2], 'enqueued_at', now, 'attempts', 0)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1
"""
)

# KEYS: pending, leased ; ARGV: count, lease_ms, stalled_batch, token, job key prefix
_FETCH = (
    _NOW
    + """
local stalled = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(stalled) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', ARGV[5] .. id, 'token')
  redis.call('ZADD', KEYS[1], now, id)
end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for i, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local key = ARGV[5] .. id
  if redis.call('EXISTS', key) == 1 then
    local token = ARGV[4] .. ':' .. i
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), id)
    local attempts = redis.call('HINCRBY', key, 'attempts', 1)
    redis.call('HSET', key, 'token', token)
    local f = redis.call('HMGET', key, 'data', 'enqueued_at', 'error')
    table.insert(out, {id, token, attempts, f[1], f[2], f[3]})
  end
end
return out
"""
)

_HOLDS = "if redis.call('HGET', KEYS[2], 'token') ~= ARGV[2] then return 0 end\n"

# KEYS: leased, job ; ARGV: id, token
_ACK = (
    _HOLDS
    + """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
"""
)

# KEYS: leased, job ; ARGV: id, token, lease_ms
_RENEW = (
    _HOLDS
    + _NOW
    + """
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[3]), ARGV[1])
return 1
"""
)

# KEYS: leased, job, pending ; ARGV: id, token, delay_ms, error ('' = a release)
_RETRY = (
    _HOLDS
    + _NOW
    + """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], 'token')
if ARGV[4] == '' then
  redis.call('HINCRBY', KEYS[2], 'attempts', -1)
else
  redis.call('HSET', KEYS[2], 'error', ARGV[4])
end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[1])
return 1
"""
)

# KEYS: leased, job, dead ; ARGV: id, token, error, retention, job key prefix
_DEAD = (
    _HOLDS
    + _NOW
    + """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], 'token')
redis.call('HSET', KEYS[2], 'error', ARGV[3])
redis.call('ZADD', KEYS[3], now, ARGV[1])
local extra = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[4])
if extra > 0 then
  local gone = redis.call('ZPOPMIN', KEYS[3], extra)
  for i = 1, #gone, 2 do redis.call('DEL', ARGV[5] .. gone[i]) end
end
return 1
"""
)

# KEYS: dead, job, pending ; ARGV: id
_REPLAY = (
    _NOW
    + """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], 'attempts', 0, 'enqueued_at', now)
redis.call('ZADD', KEYS[3], now, ARGV[1])
return 1
"""
)


class RedisQueue(Queue):
    """See the module doc. ``client`` is a ``redis.asyncio.Redis`` or ``RedisCluster``
    (``decode_responses=True``)."""

    def __init__(
        self,
        client: Redis | RedisCluster,
        prefix: str = "sockudo_queue:",
        reliability: QueueReliabilityConfig | None = None,
    ) -> None:
        super().__init__(reliability)
        self._client = client
        self._prefix = prefix
        self._scripts = {
            name: client.register_script(source)
            for name, source in {
                "enqueue": _ENQUEUE, "fetch": _FETCH, "ack": _ACK, "renew": _RENEW,
                "retry": _RETRY, "dead": _DEAD, "replay": _REPLAY,
            }.items()
        }  # fmt: skip
        self._consumer_id = uuid.uuid4().hex

    def _key(self, name: str, part: str) -> str:
        return f"{self._prefix}{{{name}}}:{part}"

    async def _call(self, script: str, keys: list[str], args: list[Any]) -> Any:
        return await self._scripts[script](keys=keys, args=args)

    async def start(self) -> None:
        await super().start()
        await self._client.ping()

    async def _close(self) -> None:
        await self._client.aclose()

    async def enqueue(self, name: str, payload: dict[str, Any], delay: float = 0) -> str:
        job_id = uuid.uuid4().hex
        data = json.dumps(payload, separators=(",", ":"))
        await self._call(
            "enqueue",
            [self._key(name, "pending"), self._key(name, f"job:{job_id}")],
            [job_id, data, max(0, round(delay * 1000))],
        )
        return job_id

    async def _fetch(self, name: str, count: int) -> list[Job]:
        r = self.reliability
        rows = await self._call(
            "fetch",
            [self._key(name, "pending"), self._key(name, "leased")],
            [
                count,
                r.lease_duration_ms,
                r.stalled_batch_size,
                f"{self._consumer_id}:{time.monotonic_ns()}",
                self._key(name, "job:"),
            ],
        )
        if not rows:
            await self._sleep(self._idle_wait())
        return [
            Job(
                id=job_id,
                queue=name,
                payload=json.loads(data) if data else {},
                attempts=int(attempts),
                enqueued_at=int(enqueued or 0) / 1000,
                error=error or None,
                handle=token,
            )
            for job_id, token, attempts, data, enqueued, error in (_pad(row) for row in rows)
        ]

    def _lease_keys(self, job: Job) -> list[str]:
        return [self._key(job.queue, "leased"), self._key(job.queue, f"job:{job.id}")]

    async def _ack(self, job: Job) -> None:
        await self._call("ack", self._lease_keys(job), [job.id, job.handle])

    async def _renew(self, job: Job) -> None:
        args = [job.id, job.handle, self.reliability.lease_duration_ms]
        await self._call("renew", self._lease_keys(job), args)

    async def _retry(self, job: Job, delay: float, error: str | None) -> None:
        keys = [*self._lease_keys(job), self._key(job.queue, "pending")]
        args = [job.id, job.handle, max(0, round(delay * 1000)), error or ""]
        await self._call("retry", keys, args)

    async def _dead(self, job: Job, error: str) -> None:
        keys = [*self._lease_keys(job), self._key(job.queue, "dead")]
        retention = max(1, self.reliability.failed_retention)
        args = [job.id, job.handle, error, retention, self._key(job.queue, "job:")]
        await self._call("dead", keys, args)

    async def dead_letters(self, name: str, limit: int = 100) -> list[Job]:
        ids: list[Any] = await self._client.zrevrange(self._key(name, "dead"), 0, limit - 1)
        jobs: list[Job] = []
        for job_id in ids:
            fields = await self._client.hmget(
                self._key(name, f"job:{job_id}"), ["data", "enqueued_at", "attempts", "error"]
            )
            data, enqueued, attempts, error = fields
            if data is None:
                continue
            jobs.append(
                Job(job_id, name, json.loads(data), int(attempts or 0),
                    int(enqueued or 0) / 1000, str(error) if error else None)
            )  # fmt: skip
        return jobs

    async def replay(self, name: str, job_id: str) -> bool:
        keys = [
            self._key(name, "dead"), self._key(name, f"job:{job_id}"),
            self._key(name, "pending"),
        ]  # fmt: skip
        return bool(await self._call("replay", keys, [job_id]))


def _pad(row: list[Any]) -> list[Any]:
    """A fetched row with its trailing nils (Lua drops them) put back."""
    return list(row) + [None] * (6 - len(row))


def create_redis_queue(config: Config) -> RedisQueue:
    """The ``redis`` queue of ``config`` (on a Redis Cluster with ``queue.redis.cluster_mode``)."""
    section = config.queue.redis
    reliability = config.queue.reliability
    client: Redis | RedisCluster
    if section.cluster_mode:
        seeds = config.database.redis.cluster_seeds(config.adapter.cluster.nodes)
        if not seeds:
            raise ValueError(
                "queue.redis.cluster_mode needs Redis Cluster seeds in "
                "database.redis.cluster.nodes or adapter.cluster.nodes (REDIS_CLUSTER_NODES)"
            )
        connection = config.database.redis.cluster
        nodes, username, password, tls = [], connection.username, connection.password, False
        for seed in seeds:
            address = seed.address()
            tls = tls or connection.use_tls or address.tls
            username = username or address.username
            password = password or address.password
            nodes.append(ClusterNode(address.host, address.port))
        client = RedisCluster(
            startup_nodes=nodes, decode_responses=True, username=username, password=password,
            ssl=tls, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT,
        )  # fmt: skip
    else:
        client = Redis.from_url(
            config.redis_url(section.url_override),
            decode_responses=True,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
        )
    return RedisQueue(client, section.prefix, reliability)
