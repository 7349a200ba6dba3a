"""Configuration: pydantic models of Sockudo's ``config.json`` sections, and their loading.

Field names follow Sockudo's config.json (snake_case); per-app fields also accept soketi's
camelCase (and PascalCase) spellings. This module is the bottom layer of ``sockudo_py``: it
imports nothing else from the package.

Sources, later wins (``load_config``):

1. built-in defaults (``Config()``, the same as the repository's ``config.json``);
2. a JSON (or ``.toml``) file, after ``${VAR}`` / ``${VAR:-default}`` substitution in its raw
   text (an unresolved ``${VAR}`` without a default is an error naming ``VAR``);
3. environment variables with Sockudo's names (``ENV_OVERRIDES``, then the
   ``SOCKUDO_DEFAULT_APP_*`` bootstrap in ``apply_default_app_env``).

Redis URL: ``REDIS_URL`` is stored in ``database.redis.url`` (and, like Sockudo, in
``cache.redis.url_override``, ``queue.redis.url_override``, ``rate_limiter.redis.url_override``
and ``adapter.redis.redis_pub_options/redis_sub_options["url"]``). Drivers should call
``Config.redis_url(section_override)``: the section's ``url_override`` if set, else
``database.redis.url``, else a URL built from ``database.redis`` host/port/db/credentials.

Apps: the embedded default app (``app-id``/``app-key``/``app-secret``) is registered only
with the memory app manager when no inline apps are given. ``SOCKUDO_DEFAULT_APP_ID|KEY|SECRET``
replace the inline apps with one app; its unset ``SOCKUDO_DEFAULT_APP_MAX_*`` limits take
``App``'s defaults (Sockudo sets each to 100, which would cap channel names at 100 chars).

Errors stop start-up with a ``ConfigError`` listing every problem as ``key.path: reason``
and the source (file, env variable or defaults). Unknown keys are warned about by dotted path
on the ``sockudo_py.config`` logger; Sockudo keys that sockudo-py does not implement (V2
features such as ``delta_compression``, ``history``, ``push``...) get a debug note only.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import tomllib
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin
from urllib.parse import quote, unquote, urlsplit

from pydantic import (
    AliasChoices,
    AliasGenerator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel, to_pascal

logger = logging.getLogger("sockudo_py.config")

Port = Annotated[int, Field(ge=0, le=65535)]
"""A TCP port; 0 lets the OS pick a free one (handy in tests)."""
NonNegInt = Annotated[int, Field(ge=0)]
PosInt = Annotated[int, Field(ge=1)]

DEFAULT_APP_SECRET = "app-secret"


class ConfigError(ValueError):
    """The configuration cannot be used. ``problems`` holds one ``"path: reason"`` per issue;
    the message lists them all, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


class Section(BaseModel):
    """Base of every config section: unknown keys are ignored here (and warned about by
    ``load_config``), values are validated strictly enough to name the bad key path.

    ``sockudo_only_keys`` lists keys Sockudo knows in this section that sockudo-py does not
    implement; they are accepted with a debug note instead of an unknown-key warning.
    """

    model_config = ConfigDict(extra="ignore", validate_assignment=True)
    sockudo_only_keys: ClassVar[frozenset[str]] = frozenset()


def _driver(value: Any, allowed: tuple[str, ...], aliases: Mapping[str, str]) -> Any:
    """Normalise a driver name (case, ``_`` vs ``-``, soketi aliases) and check it is known."""
    if not isinstance(value, str):
        return value  # the str type check reports it
    name = value.strip().lower().replace("_", "-")
    name = aliases.get(name, name)
    if name not in allowed:
        raise ValueError(f"unknown driver {value!r}; allowed: {', '.join(allowed)}")
    return name


class DriverSection(Section):
    """A section that picks a driver by name: ``DRIVERS`` are the known names,
    ``DRIVER_ALIASES`` map other spellings (soketi's) to them; anything else is an error."""

    DRIVERS: ClassVar[tuple[str, ...]] = ()
    DRIVER_ALIASES: ClassVar[Mapping[str, str]] = {}

    @field_validator("driver", mode="before", check_fields=False)
    @classmethod
    def _known_driver(cls, value: Any) -> Any:
        return _driver(value, cls.DRIVERS, cls.DRIVER_ALIASES)


# --- per-app ---------------------------------------------------------------------------------


class WebhookFilter(Section):
    """Which channels a webhook fires for. soketi's ``channel_name_starts_with`` /
    ``channel_name_ends_with`` and Sockudo's ``channel_prefix`` / ``channel_suffix`` are the
    same fields; ``channel_pattern`` is a regular expression (Sockudo)."""

    channel_name_starts_with: str | None = Field(
        default=None, validation_alias=AliasChoices("channel_name_starts_with", "channel_prefix")
    )
    channel_name_ends_with: str | None = Field(
        default=None, validation_alias=AliasChoices("channel_name_ends_with", "channel_suffix")
    )
    channel_pattern: str | None = None
    sockudo_only_keys = frozenset({"channel_namespace", "channel_namespaces"})

    @field_validator("channel_pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from exc
        return value


class WebhookLambda(Section):
    """AWS Lambda target: Sockudo ``{function_name, region}``, soketi ``{async, region,
    client_options}``."""

    function_name: str | None = None
    region: str = "us-east-1"
    async_: bool = Field(default=True, validation_alias=AliasChoices("async", "async_"))
    client_options: dict[str, Any] = Field(default_factory=dict)


class WebhookRetry(Section):
    """Retry policy of webhook delivery (global ``webhooks.retry`` or per webhook)."""

    enabled: bool = True
    max_attempts: PosInt | None = None
    max_elapsed_time_ms: NonNegInt = 300_000
    initial_backoff_ms: NonNegInt = 1000
    max_backoff_ms: NonNegInt = 60_000


class Webhook(Section):
    """One webhook endpoint of an app: an HTTP ``url`` or a Lambda (``lambda_function`` or
    ``lambda``), the ``event_types`` it receives, an optional channel ``filter`` and extra
    ``headers``. ``retry`` / ``request_timeout_ms`` override the global ``webhooks`` ones."""

    url: str | None = None
    lambda_function: str | None = None
    lambda_: WebhookLambda | None = Field(
        default=None, validation_alias=AliasChoices("lambda", "lambda_")
    )
    event_types: list[str] = Field(default_factory=list)
    filter: WebhookFilter | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    retry: WebhookRetry | None = None
    request_timeout_ms: PosInt | None = None


class AppMessageRateLimit(Section):
    """Sockudo's per-socket limiter on all inbound frames (off unless enabled)."""

    enabled: bool = False
    max_attempts: NonNegInt = 60
    decay_seconds: PosInt = 60
    terminate_on_limit: bool = False


def _app_aliases(name: str) -> AliasChoices:
    return AliasChoices(name, to_camel(name), to_pascal(name), *_SOKETI_APP_ALIASES.get(name, ()))


# soketi's spellings that are not simply camelCase/PascalCase of our field names
# (soketi src/app.ts, its MySQL/Postgres columns and DynamoDB attributes).
_SOKETI_APP_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("AppId", "app_id"),
    "key": ("AppKey", "app_key"),
    "secret": ("AppSecret", "app_secret"),
    "max_backend_events_per_second": ("max_backend_events_per_sec",),
    "max_client_events_per_second": ("max_client_events_per_sec",),
    "max_read_requests_per_second": ("max_read_req_per_sec",),
}

# Sockudo's nested ``policy`` object: where each flat field lives in it.
_POLICY_GROUPS = ("limits", "features", "channels")


def flatten_app_policy(data: Any) -> Any:
    """Turn Sockudo's ``{policy: {limits, features, channels, webhooks}}`` app shape into the
    flat one; policy values win over flat fields of the same name, except nulls (an unset
    option in Sockudo), which leave the flat field or the default."""
    if not isinstance(data, dict) or not isinstance(data.get("policy"), dict):
        return data
    flat = {k: v for k, v in data.items() if k != "policy"}
    policy = data["policy"]
    for group in _POLICY_GROUPS:
        if isinstance(policy.get(group), dict):  # Sockudo writes unset options as null
            flat.update((k, v) for k, v in policy[group].items() if v is not None)
    if "webhooks" in policy:
        flat["webhooks"] = policy["webhooks"]
    return flat


class App(BaseModel):
    """One tenant: credentials, feature switches and limits.

    ``0`` for ``max_connections`` and ``max_client_events_per_second`` means unlimited (soketi's
    ``-1`` and ``null`` are read as 0); ``-1`` for ``max_backend_events_per_second`` /
    ``max_read_requests_per_second`` is read as ``None`` (not limited). An app without
    ``enabled`` is enabled. Every field accepts snake_case, camelCase and PascalCase keys plus
    soketi's database spellings (``AppId``, ``max_client_events_per_sec``...). Sockudo's nested
    ``policy`` object ({limits, features, channels, webhooks}) is flattened, its values winning
    over flat fields. ``webhooks`` may be a JSON string (soketi's SQL
    column).
    """

    model_config = ConfigDict(
        extra="ignore",
        alias_generator=AliasGenerator(validation_alias=_app_aliases),
        populate_by_name=True,
    )
    sockudo_only_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "channel_namespaces",
            "channel_delta_compression",
            "annotations_enabled",
            "idempotency",
            "connection_recovery",
            "history",
            "presence_history",
            "created_at",
            "updated_at",
        }
    )

    id: str
    key: str
    secret: str = Field(repr=False)  # an App in a log line never shows it
    enabled: bool = True
    max_connections: int = 0
    enable_client_messages: bool = False
    enable_user_authentication: bool = False
    enable_watchlist_events: bool = False
    enable_subscription_count: bool = False
    max_client_events_per_second: int = 0
    decay_seconds: int = 1
    terminate_on_limit: bool = False
    message_rate_limit: AppMessageRateLimit | None = None
    max_backend_events_per_second: int | None = None
    max_read_requests_per_second: int | None = None
    max_presence_members_per_channel: int = 100
    max_presence_member_size_in_kb: float = 2
    max_channel_name_length: int = 200
    max_event_channels_at_once: int = 100
    max_event_name_length: int = 200
    max_event_payload_in_kb: float = 100
    max_event_batch_size: int = 10
    allowed_origins: list[str] = Field(default_factory=list)
    webhooks: list[Webhook] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _flatten_policy(cls, data: Any) -> Any:
        return flatten_app_policy(data)

    @field_validator("id", "key", "secret", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        # ids are often numeric in databases and in soketi's configs
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("max_connections", "max_client_events_per_second", mode="before")
    @classmethod
    def _unlimited(cls, value: Any) -> Any:
        # soketi writes -1 for "unlimited", Sockudo 0 or null
        if value is None or value == -1 or value == "-1":
            return 0
        return value

    @field_validator("max_backend_events_per_second", "max_read_requests_per_second", mode="before")
    @classmethod
    def _not_limited(cls, value: Any) -> Any:
        return None if value == -1 or value == "-1" else value

    @field_validator("webhooks", mode="before")
    @classmethod
    def _webhooks_json(cls, value: Any) -> Any:
        if isinstance(value, str):  # soketi stores webhooks as a JSON column
            try:
                return json.loads(value) if value.strip() else []
            except json.JSONDecodeError as exc:
                raise ValueError(f"webhooks is a string but not valid JSON: {exc}") from exc
        return [] if value is None else value

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        if isinstance(value, str):  # a comma list, as in env and some databases
            return [part.strip() for part in value.split(",") if part.strip()]
        return [] if value is None else value


def default_app() -> App:
    """The embedded default tenant."""
    return App(id="app-id", key="app-key", secret=DEFAULT_APP_SECRET, enable_client_messages=True)


# --- adapter and cluster health --------------------------------------------------------------


class ClusterHealthConfig(Section):
    """Dead-node detection of clustered adapters: every node sends a heartbeat each
    ``heartbeat_interval_ms``; a node silent for ``node_timeout_ms`` is removed (its presence
    members leave) by the sweep run each ``cleanup_interval_ms``."""

    enabled: bool = True
    heartbeat_interval_ms: PosInt = 10_000
    node_timeout_ms: PosInt = 30_000
    cleanup_interval_ms: PosInt = 10_000

    @model_validator(mode="after")
    def _intervals(self) -> ClusterHealthConfig:
        if self.heartbeat_interval_ms * 3 > self.node_timeout_ms:
            raise ValueError(
                f"heartbeat_interval_ms ({self.heartbeat_interval_ms}) must be at most "
                f"node_timeout_ms / 3 ({self.node_timeout_ms // 3})"
            )
        if self.cleanup_interval_ms > self.node_timeout_ms:
            raise ValueError(
                f"cleanup_interval_ms ({self.cleanup_interval_ms}) must be at most "
                f"node_timeout_ms ({self.node_timeout_ms})"
            )
        return self


class RedisAdapterConfig(Section):
    """Redis pub/sub adapter. The connection comes from ``database.redis`` (or ``REDIS_URL``,
    also copied to ``redis_pub_options.url`` / ``redis_sub_options.url``)."""

    requests_timeout: PosInt = 5000
    prefix: str = "sockudo_adapter:"
    cluster_mode: bool = False
    redis_pub_options: dict[str, Any] = Field(default_factory=dict)
    redis_sub_options: dict[str, Any] = Field(default_factory=dict)


class RedisClusterAdapterConfig(Section):
    """Redis Cluster adapter; ``nodes`` are seed URLs or ``host:port`` strings.
    ``use_sharded_pubsub``: true/false forces it; unset uses it when the server has it."""

    nodes: list[str] = Field(default_factory=list)
    prefix: str = "sockudo_adapter:"
    request_timeout_ms: PosInt = 1000
    use_connection_manager: bool = True
    use_sharded_pubsub: bool | None = None
    sockudo_only_keys = frozenset({"tls"})


class NatsAdapterConfig(Section):
    """NATS adapter. ``nodes_number`` fixes the expected node count (else discovered)."""

    servers: list[str] = Field(default_factory=lambda: ["nats://localhost:4222"])
    prefix: str = "sockudo_adapter:"
    request_timeout_ms: PosInt = 5000
    connection_timeout_ms: PosInt = 5000
    username: str | None = None
    password: str | None = None
    token: str | None = None
    nodes_number: PosInt | None = None
    discovery_max_wait_ms: NonNegInt = 1000
    discovery_idle_wait_ms: NonNegInt = 150
    subscription_capacity: PosInt | None = None
    client_capacity: PosInt | None = None
    max_reconnects: NonNegInt | None = None
    presence_sync_chunk_size: PosInt | None = None
    no_echo: bool = True


class AdapterConfig(DriverSection):
    """Cross-node fan-out. ``driver``: local | redis | redis-cluster | nats.

    Sockudo accepts ``cluster_health`` both here and at the top level; on loading both are
    made equal (the top-level one wins when both are given). Code reads the top-level one."""

    DRIVERS: ClassVar[tuple[str, ...]] = ("local", "redis", "redis-cluster", "nats")
    DRIVER_ALIASES: ClassVar[Mapping[str, str]] = {"rediscluster": "redis-cluster"}
    sockudo_only_keys = frozenset({"pulsar", "rabbitmq", "google_pubsub", "kafka", "iggy", "omq"})

    driver: str = "local"
    redis: RedisAdapterConfig = Field(default_factory=RedisAdapterConfig)
    cluster: RedisClusterAdapterConfig = Field(default_factory=RedisClusterAdapterConfig)
    nats: NatsAdapterConfig = Field(default_factory=NatsAdapterConfig)
    cluster_health: ClusterHealthConfig = Field(default_factory=ClusterHealthConfig)
    fallback_to_local: bool = True
    enable_socket_counting: bool = True
    aggregate_counts: bool = False
    fast_presence_transitions: bool = False
    buffer_multiplier_per_cpu: PosInt = 64


# --- app manager, cache, queue ---------------------------------------------------------------


class AppArray(Section):
    """Inline apps (``app_manager.array.apps``); upserted into any app manager at start-up."""

    apps: list[App] = Field(default_factory=lambda: [default_app()])


class AppManagerCache(Section):
    """Lookups of a database app manager go through the cache driver for ``ttl`` seconds:
    a change made in the store takes effect within ``ttl`` (the ``apps`` command clears the
    entries at once). Misses are cached for at most 5 s."""

    enabled: bool = True
    ttl: NonNegInt = 300


class AppManagerConfig(DriverSection):
    """Where apps come from. ``driver``: memory | mysql | dynamodb (soketi's ``array`` means
    memory). The embedded default app is only added for the memory driver."""

    DRIVERS: ClassVar[tuple[str, ...]] = ("memory", "mysql", "dynamodb")
    DRIVER_ALIASES: ClassVar[Mapping[str, str]] = {"array": "memory"}
    sockudo_only_keys = frozenset({"scylladb", "surrealdb"})

    driver: str = "memory"
    array: AppArray = Field(default_factory=AppArray)
    cache: AppManagerCache = Field(default_factory=AppManagerCache)


class MemoryCacheConfig(Section):
    ttl: NonNegInt = 300
    cleanup_interval: PosInt = 60
    max_capacity: PosInt = 10000


class RedisUse(Section):
    """How one driver uses Redis: its key ``prefix``, an optional ``url_override`` of
    ``database.redis`` (see ``Config.redis_url``) and ``cluster_mode``."""

    prefix: str = ""
    url_override: str | None = None
    cluster_mode: bool = False


class RedisCacheConfig(RedisUse):
    prefix: str = "sockudo_cache:"


class CacheConfig(DriverSection):
    """Shared cache (cache channels, app lookups). ``driver``: memory | redis |
    redis-cluster | none."""

    DRIVERS: ClassVar[tuple[str, ...]] = ("memory", "redis", "redis-cluster", "none")
    DRIVER_ALIASES: ClassVar[Mapping[str, str]] = {"rediscluster": "redis-cluster"}

    driver: str = "memory"
    memory: MemoryCacheConfig = Field(default_factory=MemoryCacheConfig)
    redis: RedisCacheConfig = Field(default_factory=RedisCacheConfig)


class RedisQueueConfig(RedisUse):
    concurrency: PosInt = 5
    prefix: str = "sockudo_queue:"
    response_timeout_ms: PosInt = 5000


class RedisClusterQueueConfig(Section):
    nodes: list[str] = Field(default_factory=lambda: ["redis://127.0.0.1:6379"])
    concurrency: PosInt = 5
    prefix: str = "sockudo_queue:"
    request_timeout_ms: PosInt = 5000


class SqsQueueConfig(Section):
    region: str = "us-east-1"
    queue_url_prefix: str | None = None
    visibility_timeout: NonNegInt = 30
    endpoint_url: str | None = None
    max_messages: Annotated[int, Field(ge=1, le=10)] = 10
    wait_time_seconds: Annotated[int, Field(ge=0, le=20)] = 5
    concurrency: PosInt = 5
    fifo: bool = False
    message_group_id: str = "default"
    # Not in Sockudo (it uses the AWS default chain, as we do when these are unset).
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_profile_name: str | None = None


class QueueReliabilityConfig(Section):
    """At-least-once delivery knobs of the queue (Sockudo ``queue.reliability``)."""

    max_attempts: PosInt = 5
    retry_base_delay_ms: NonNegInt = 1000
    retry_max_delay_ms: NonNegInt = 60_000
    retry_jitter: Annotated[float, Field(ge=0, le=1)] = 0.2
    lease_duration_ms: PosInt = 30_000
    lease_renew_interval_ms: PosInt = 10_000
    stalled_batch_size: PosInt = 100
    worker_poll_interval_ms: PosInt = 500
    worker_prefetch: PosInt = 16
    shutdown_timeout_ms: NonNegInt = 30_000
    completed_retention: NonNegInt = 1000
    failed_retention: NonNegInt = 10_000
    event_retention: NonNegInt = 10_000
    deduplication_ttl_ms: NonNegInt = 300_000
    memory_capacity: PosInt = 100_000
    max_batch_size: PosInt = 1000


class QueueConfig(DriverSection):
    """Webhook job queue. ``driver``: memory | redis | sqs | none (soketi's ``sync`` means
    memory). Sockudo's code default is redis; ours, like its shipped config.json, memory."""

    DRIVERS: ClassVar[tuple[str, ...]] = ("memory", "redis", "sqs", "none")
    DRIVER_ALIASES: ClassVar[Mapping[str, str]] = {"sync": "memory"}
    sockudo_only_keys = frozenset(
        {"sns", "nats", "pulsar", "rabbitmq", "google_pubsub", "kafka", "iggy"}
    )

    driver: str = "memory"
    redis: RedisQueueConfig = Field(default_factory=RedisQueueConfig)
    redis_cluster: RedisClusterQueueConfig = Field(default_factory=RedisClusterQueueConfig)
    sqs: SqsQueueConfig = Field(default_factory=SqsQueueConfig)
    reliability: QueueReliabilityConfig = Field(default_factory=QueueReliabilityConfig)


# --- rate limiter, metrics, webhooks, ssl, cors ----------------------------------------------


class RateLimit(Section):
    """Fixed window: at most ``max_requests`` per ``window_seconds`` per client IP;
    ``trust_hops`` = how many ``X-Forwarded-For`` proxies to trust."""

    max_requests: PosInt = 100
    window_seconds: PosInt = 60
    identifier: str = "api"
    trust_hops: NonNegInt = 0


class RedisRateLimiterConfig(RedisUse):
    prefix: str = "sockudo_rl:"


class RateLimiterConfig(DriverSection):
    """HTTP API and WebSocket-connect rate limits. ``driver``: memory | redis (soketi's
    ``local`` means memory). Off by default in sockudo-py (Sockudo's code default is on)."""

    DRIVERS: ClassVar[tuple[str, ...]] = ("memory", "redis")
    DRIVER_ALIASES: ClassVar[Mapping[str, str]] = {"local": "memory"}

    enabled: bool = False
    driver: str = "memory"
    api_rate_limit: RateLimit = Field(default_factory=RateLimit)
    websocket_rate_limit: RateLimit = Field(
        default_factory=lambda: RateLimit(
            max_requests=20, window_seconds=60, identifier="websocket_connect"
        )
    )
    redis: RedisRateLimiterConfig = Field(default_factory=RedisRateLimiterConfig)


class PrometheusConfig(Section):
    prefix: str = "sockudo_"


class MetricsConfig(DriverSection):
    """Prometheus exporter on its own listener ``host:port`` (``GET /metrics``)."""

    DRIVERS: ClassVar[tuple[str, ...]] = ("prometheus",)
    sockudo_only_keys = frozenset({"tcp_exporter"})

    enabled: bool = True
    driver: str = "prometheus"
    host: str = "0.0.0.0"
    port: Port = 9601
    prometheus: PrometheusConfig = Field(default_factory=PrometheusConfig)


class WebhookBatching(Section):
    """Events are buffered ``duration`` ms and merged up to ``size`` per request."""

    enabled: bool = True
    duration: NonNegInt = 50
    size: PosInt = 100


class WebhooksConfig(Section):
    """Global webhook delivery settings (endpoints are per app)."""

    batching: WebhookBatching = Field(default_factory=WebhookBatching)
    retry: WebhookRetry = Field(default_factory=WebhookRetry)
    request_timeout_ms: PosInt = 10_000


class SslConfig(Section):
    """TLS on the main listener; ``redirect_http`` adds a plain listener on ``http_port``."""

    enabled: bool = False
    cert_path: str = ""
    key_path: str = ""
    passphrase: str | None = None
    ca_path: str | None = None
    redirect_http: bool = False
    http_port: Port = 80

    @model_validator(mode="after")
    def _paths(self) -> SslConfig:
        if self.enabled and not (self.cert_path and self.key_path):
            raise ValueError("ssl.enabled needs both cert_path and key_path")
        return self


class CorsConfig(Section):
    """CORS of the HTTP API. ``origin`` patterns: exact, ``*`` (any; credentials are then not
    sent) or one ``*`` wildcard such as ``https://*.example.com``."""

    origin: list[str] = Field(default_factory=lambda: ["*"])
    methods: list[str] = Field(
        default_factory=lambda: ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    )
    allowed_headers: list[str] = Field(
        default_factory=lambda: ["Authorization", "Content-Type", "X-Requested-With", "Accept"]
    )
    credentials: bool = True

    @field_validator("origin", mode="before")
    @classmethod
    def _one_origin(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("origin")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        bad = [p for p in value if p not in ("*", "any") and p.count("*") > 1]
        if bad:
            raise ValueError(f"origin patterns may hold at most one '*': {bad}")
        return value


# --- databases -------------------------------------------------------------------------------


class RedisNode(Section):
    """A Redis node as ``{host, port}``; ``host`` may also be a full ``redis://`` URL."""

    host: str = "127.0.0.1"
    port: Port = 6379

    @classmethod
    def from_seed(cls, seed: str) -> RedisNode:
        """Parse ``host:port``, ``[v6]:port``, ``host`` or a ``redis(s)://`` URL."""
        seed = seed.strip()
        if seed.startswith(("redis://", "rediss://")):
            match = re.search(r":(\d+)/?$", seed)
            return cls(host=seed, port=int(match.group(1)) if match else 6379)
        match = re.fullmatch(r"\[(.+)\](?::(\d+))?|([^:]+)(?::(\d+))?", seed)
        if match is None:  # a bare IPv6 address
            return cls(host=seed)
        host = match.group(1) or match.group(3)
        port = match.group(2) or match.group(4)
        return cls(host=host, port=int(port) if port else 6379)

    def address(self) -> RedisAddress:
        """Where to connect: the URL's parts when ``host`` is a ``redis(s)://`` URL."""
        if not self.host.startswith(("redis://", "rediss://")):
            return RedisAddress(self.host, self.port)
        parts = urlsplit(self.host)
        return RedisAddress(
            parts.hostname or "127.0.0.1",
            parts.port or self.port,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
            parts.scheme == "rediss",
        )


@dataclass(frozen=True)
class RedisAddress:
    """A Redis node's host and port, with any credentials and TLS its seed URL carried."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False


class RedisTlsConfig(Section):
    enabled: bool = False
    accept_invalid_certs: bool = False
    ca_path: str | None = None
    client_cert_path: str | None = None
    client_key_path: str | None = None


class RedisClusterConnection(Section):
    nodes: list[RedisNode] = Field(default_factory=list)
    username: str | None = None
    password: str | None = None
    use_tls: bool = Field(default=False, validation_alias=AliasChoices("use_tls", "useTLS"))


class RedisConnection(Section):
    """The shared Redis connection of every Redis driver. ``url`` (set by ``REDIS_URL``)
    wins over the discrete fields; ``sentinels`` switch to Sentinel with master ``name``;
    ``cluster.nodes`` (or legacy ``cluster_nodes``) are the Redis Cluster seeds."""

    url: str | None = None
    host: str = "127.0.0.1"
    port: Port = 6379
    db: NonNegInt = 0
    username: str | None = None
    password: str | None = None
    key_prefix: str = "sockudo:"
    sentinels: list[RedisNode] = Field(default_factory=list)
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    name: str = "mymaster"
    sentinel_tls: RedisTlsConfig = Field(default_factory=RedisTlsConfig)
    master_tls: RedisTlsConfig = Field(default_factory=RedisTlsConfig)
    cluster: RedisClusterConnection = Field(default_factory=lambda: RedisClusterConnection())
    cluster_nodes: list[RedisNode] = Field(default_factory=list)

    def to_url(self) -> str:
        """``url`` if set, else ``redis[s]://[user[:pass]@]host:port/db`` from the fields
        (``host`` may carry the scheme). Sentinel setups should use ``sentinels``/``name``."""
        if self.url:
            return self.url
        scheme, host = "redis", self.host
        for prefix in ("rediss", "redis"):
            if host.startswith(prefix + "://"):
                scheme, host = prefix, host[len(prefix) + 3 :]
                break
        auth = ""
        if self.username or self.password:
            auth = quote(self.username or "", safe="")
            if self.password:
                auth += ":" + quote(self.password, safe="")
            auth += "@"
        return f"{scheme}://{auth}{host}:{self.port}/{self.db}"

    def cluster_seeds(self, fallback: list[str] | None = None) -> list[RedisNode]:
        """``cluster.nodes``, else the legacy ``cluster_nodes``, else ``fallback`` seed
        strings (``host:port`` or URLs, as in ``adapter.cluster.nodes``)."""
        nodes = self.cluster.nodes or self.cluster_nodes
        return list(nodes) or [RedisNode.from_seed(seed) for seed in fallback or ()]


class SqlConnection(Section):
    """MySQL / PostgreSQL app store (``table_name`` holds the apps). ``table_layout``:
    ``sockudo`` (its ``applications`` table, created when missing) or ``soketi`` (soketi's
    ``apps`` table, read and written as it is; set ``table_name`` to ``apps``)."""

    host: str = "localhost"
    port: Port = 3306
    username: str = "root"
    password: str = ""
    database: str = "sockudo"
    table_name: str = "applications"
    table_layout: Literal["sockudo", "soketi"] = "sockudo"
    connection_pool_size: PosInt = 10
    pool_min: NonNegInt | None = None
    pool_max: PosInt | None = None
    cache_ttl: NonNegInt = 300
    cache_cleanup_interval: PosInt = 60
    cache_max_capacity: PosInt = 100


class DynamoDbConfig(Section):
    """DynamoDB app store; credentials fall back to the usual AWS chain when unset."""

    region: str = "us-east-1"
    table_name: str = "sockudo-applications"
    endpoint_url: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_profile_name: str | None = Field(
        default=None, validation_alias=AliasChoices("aws_profile_name", "profile_name")
    )


class DatabaseConfig(Section):
    """Connections of the database-backed drivers."""

    sockudo_only_keys = frozenset({"surrealdb", "scylladb"})

    redis: RedisConnection = Field(default_factory=RedisConnection)
    mysql: SqlConnection = Field(default_factory=SqlConnection)
    postgres: SqlConnection = Field(default_factory=lambda: SqlConnection(port=5432))
    dynamodb: DynamoDbConfig = Field(default_factory=lambda: DynamoDbConfig())


class DatabasePooling(Section):
    enabled: bool = True
    min: NonNegInt = 2
    max: PosInt = 10


# --- limits and the rest ---------------------------------------------------------------------


class ChannelLimits(Section):
    max_name_length: PosInt = 200
    cache_ttl: NonNegInt = 3600


class EventLimits(Section):
    """Server-wide event limits (Sockudo's Pusher paths read the per-app ones)."""

    max_channels_at_once: PosInt = 100
    max_name_length: PosInt = 200
    max_payload_in_kb: float = 100
    max_batch_size: PosInt = 10


class PresenceConfig(Section):
    max_members_per_channel: PosInt = 100
    max_member_size_in_kb: float = 2
    update_rate_limit_per_member_per_second: NonNegInt = 10
    ungraceful_timeout_seconds: NonNegInt = 0
    v2_ungraceful_timeout_seconds: NonNegInt = 15


class AcceptTraffic(Section):
    memory_threshold: Annotated[float, Field(gt=0, le=1)] = 0.90


class HttpApiConfig(Section):
    request_limit_in_mb: float = 10
    usage_enabled: bool = True
    accept_traffic: AcceptTraffic = Field(default_factory=AcceptTraffic)


class WebSocketConfig(Section):
    """Per-socket outbound buffer: at most ``max_messages`` frames or ``max_bytes`` bytes queued.
    The rest are transport limits (sizes in bytes, times in seconds)."""

    COMPRESSION: ClassVar[tuple[str, ...]] = (
        "disabled", "shared", "dedicated", "window256b", "window1kb", "window2kb",
        "window4kb", "window8kb", "window16kb", "window32kb",
    )  # fmt: skip

    max_messages: int = 1000
    max_bytes: int | None = 4 * 1024 * 1024
    disconnect_on_buffer_full: bool = True
    pong_timeout: PosInt = 30  # ours: seconds to wait for pusher:pong after a server ping
    max_message_size: PosInt = 64 * 1024 * 1024
    max_frame_size: PosInt = 16 * 1024 * 1024
    write_buffer_size: PosInt = 16 * 1024
    max_backpressure: PosInt = 1024 * 1024
    auto_ping: bool = True
    ping_interval: PosInt = 30
    idle_timeout: PosInt = 120
    compression: str = "disabled"

    @field_validator("compression")
    @classmethod
    def _known_compression(cls, value: str) -> str:
        if value.lower() not in cls.COMPRESSION:
            raise ValueError(
                f"unknown compression {value!r}; allowed: {', '.join(cls.COMPRESSION)}"
            )
        return value.lower()


class InstanceConfig(Section):
    """``process_id`` names this node in a cluster; ``None`` = a random UUID at start-up."""

    process_id: str | None = None


class ConsoleConfig(Section):
    """The browser debug console (``GET /console``, README "Console"): off unless ``enabled``.
    Its data, actions and live log need ``admin_token`` (every app) or an app's secret (that
    app alone); with no ``admin_token``, only app secrets open it."""

    enabled: bool = False
    admin_token: str | None = None


class LoggingConfig(Section):
    colors_enabled: bool = True
    include_target: bool = True


class UnixSocketConfig(Section):
    """Listen on a Unix socket instead of TCP (``permission_mode`` is an octal string)."""

    enabled: bool = False
    path: str = "/var/run/sockudo/sockudo.sock"
    permission_mode: str = "660"

    @field_validator("permission_mode", mode="before")
    @classmethod
    def _octal(cls, value: Any) -> Any:
        text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        if isinstance(text, str) and not re.fullmatch(r"[0-7]{3,4}", text):
            raise ValueError(f"permission_mode must be an octal string like '660', got {value!r}")
        return text


class Config(Section):
    """The whole server configuration (the root of config.json).

    ``Config()`` is the embedded default: local adapter, memory everything, port 6001,
    metrics on 9601, one app ``app-id``/``app-key``/``app-secret`` with client messages on.
    """

    sockudo_only_keys = frozenset(
        {
            "cleanup", "delta_compression", "tag_filtering", "connection_recovery", "history",
            "presence_history", "idempotency", "ephemeral", "echo_control",
            "event_name_filtering", "versioned_messages", "annotations", "ai_transport",
            "push", "push_rules", "ably_compat", "mcp",
        }
    )  # fmt: skip

    debug: bool = False
    mode: str = "production"
    server_role: str = "default"
    host: str = "0.0.0.0"
    port: Port = 6001
    path_prefix: str = "/"
    max_connections: NonNegInt = 0
    activity_timeout: PosInt = 120
    user_authentication_timeout: PosInt = 3600
    shutdown_grace_period: Annotated[float, Field(ge=0)] = 10
    workers: NonNegInt = 1
    """Worker processes serving the port (0: one per CPU core); see ``sockudo_py.workers``."""
    websocket_max_payload_kb: PosInt = 64
    health_check_timeout_ms: PosInt = 2000
    instance: InstanceConfig = Field(default_factory=InstanceConfig)
    adapter: AdapterConfig = Field(default_factory=AdapterConfig)
    cluster_health: ClusterHealthConfig = Field(default_factory=ClusterHealthConfig)
    app_manager: AppManagerConfig = Field(default_factory=AppManagerConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    queue: QueueConfig = Field(default_factory=QueueConfig)
    rate_limiter: RateLimiterConfig = Field(default_factory=RateLimiterConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    webhooks: WebhooksConfig = Field(default_factory=WebhooksConfig)
    ssl: SslConfig = Field(default_factory=SslConfig)
    cors: CorsConfig = Field(default_factory=CorsConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    database_pooling: DatabasePooling = Field(default_factory=DatabasePooling)
    channel_limits: ChannelLimits = Field(default_factory=ChannelLimits)
    event_limits: EventLimits = Field(default_factory=EventLimits)
    presence: PresenceConfig = Field(default_factory=PresenceConfig)
    http_api: HttpApiConfig = Field(default_factory=HttpApiConfig)
    websocket: WebSocketConfig = Field(default_factory=WebSocketConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    unix_socket: UnixSocketConfig = Field(default_factory=UnixSocketConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)

    @model_validator(mode="before")
    @classmethod
    def _one_cluster_health(cls, data: Any) -> Any:
        """Keep ``cluster_health`` and ``adapter.cluster_health`` equal (top level wins)."""
        if not isinstance(data, dict) or not isinstance(data.get("adapter", {}), dict):
            return data  # not raw input (e.g. an attribute assignment): leave it alone
        adapter = data.get("adapter", {})
        chosen = data.get("cluster_health", adapter.get("cluster_health"))
        if chosen is None:
            return data
        return {**data, "adapter": {**adapter, "cluster_health": chosen}, "cluster_health": chosen}

    def redis_url(self, url_override: str | None = None) -> str:
        """The Redis URL a driver should use: its section's ``url_override`` if given, else
        ``database.redis`` (``url`` / ``REDIS_URL``, or built from host/port/db/credentials)."""
        return url_override or self.database.redis.to_url()


# --------------------------------------------------------------------------------------------
# Environment overrides
# --------------------------------------------------------------------------------------------

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def parse_bool(text: str) -> bool:
    """``true/1/yes/on`` or ``false/0/no/off`` (any case); anything else is a ValueError."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"expected true/1/yes/on or false/0/no/off, got {text!r}")


def _int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"expected an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None


def _str(text: str) -> str:
    return text


def _opt_str(text: str) -> str | None:
    return text or None


def _opt_int(text: str) -> int | None:
    return None if text.strip().lower() in ("", "none", "null") else _int(text)


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _nodes(text: str) -> list[dict[str, Any]]:
    return [RedisNode.from_seed(seed).model_dump() for seed in _csv(text)]


_PARSERS: dict[str, Callable[[str], Any]] = {
    "str": _str,
    "str?": _opt_str,
    "int": _int,
    "int?": _opt_int,
    "float": _float,
    "bool": parse_bool,
    "list": _csv,
    "nodes": _nodes,
}

# name                                    type   dotted key path(s) in config.json
_ENV_TABLE = """
HOST                                      str    host
PORT                                      int    port
DEBUG_MODE                                bool   debug
DEBUG                                     bool+  debug
ENVIRONMENT                               str    mode
ACTIVITY_TIMEOUT                          int    activity_timeout
SHUTDOWN_GRACE_PERIOD                     float  shutdown_grace_period
WORKERS                                   int    workers
USER_AUTHENTICATION_TIMEOUT               int    user_authentication_timeout
WEBSOCKET_MAX_PAYLOAD_KB                  int    websocket_max_payload_kb
SOCKUDO_MAX_CONNECTIONS                   int    max_connections
INSTANCE_PROCESS_ID                       str?   instance.process_id
SOCKUDO_SERVER_ROLE                       str    server_role
HEALTH_CHECK_TIMEOUT_MS                   int    health_check_timeout_ms

ADAPTER_DRIVER                            str    adapter.driver
CACHE_DRIVER                              str    cache.driver
QUEUE_DRIVER                              str    queue.driver
APP_MANAGER_DRIVER                        str    app_manager.driver
RATE_LIMITER_DRIVER                       str    rate_limiter.driver
METRICS_DRIVER                            str    metrics.driver
ADAPTER_BUFFER_MULTIPLIER_PER_CPU         int    adapter.buffer_multiplier_per_cpu
ADAPTER_ENABLE_SOCKET_COUNTING            bool   adapter.enable_socket_counting
ADAPTER_AGGREGATE_COUNTS                  bool   adapter.aggregate_counts
ADAPTER_FAST_PRESENCE_TRANSITIONS         bool   adapter.fast_presence_transitions
ADAPTER_FALLBACK_TO_LOCAL                 bool   adapter.fallback_to_local

REDIS_URL                                 str    database.redis.url cache.redis.url_override
                                                 queue.redis.url_override
                                                 rate_limiter.redis.url_override
                                                 adapter.redis.redis_pub_options.url
                                                 adapter.redis.redis_sub_options.url
DATABASE_REDIS_HOST                       str    database.redis.host
DATABASE_REDIS_PORT                       int    database.redis.port
DATABASE_REDIS_USERNAME                   str?   database.redis.username
DATABASE_REDIS_PASSWORD                   str    database.redis.password
DATABASE_REDIS_DB                         int    database.redis.db
DATABASE_REDIS_KEY_PREFIX                 str    database.redis.key_prefix
DATABASE_REDIS_SENTINEL_USERNAME          str?   database.redis.sentinel_username
DATABASE_REDIS_SENTINEL_PASSWORD          str?   database.redis.sentinel_password
DATABASE_REDIS_SENTINEL_TLS_ENABLED       bool   database.redis.sentinel_tls.enabled
DATABASE_REDIS_SENTINEL_TLS_ACCEPT_INVALID_CERTS bool
                                                 database.redis.sentinel_tls.accept_invalid_certs
DATABASE_REDIS_SENTINEL_TLS_CA_PATH       str?   database.redis.sentinel_tls.ca_path
DATABASE_REDIS_SENTINEL_TLS_CLIENT_CERT_PATH str? database.redis.sentinel_tls.client_cert_path
DATABASE_REDIS_SENTINEL_TLS_CLIENT_KEY_PATH str? database.redis.sentinel_tls.client_key_path
DATABASE_REDIS_MASTER_TLS_ENABLED         bool   database.redis.master_tls.enabled
DATABASE_REDIS_MASTER_TLS_ACCEPT_INVALID_CERTS bool database.redis.master_tls.accept_invalid_certs
DATABASE_REDIS_MASTER_TLS_CA_PATH         str?   database.redis.master_tls.ca_path
DATABASE_REDIS_MASTER_TLS_CLIENT_CERT_PATH str?  database.redis.master_tls.client_cert_path
DATABASE_REDIS_MASTER_TLS_CLIENT_KEY_PATH str?   database.redis.master_tls.client_key_path
DATABASE_REDIS_CLUSTER_USERNAME           str?   database.redis.cluster.username
DATABASE_REDIS_CLUSTER_PASSWORD           str    database.redis.cluster.password
DATABASE_REDIS_CLUSTER_USE_TLS            bool   database.redis.cluster.use_tls
REDIS_CLUSTER_NODES                       list   adapter.cluster.nodes queue.redis_cluster.nodes
REDIS_CLUSTER_NODES                       nodes  database.redis.cluster.nodes
                                                 database.redis.cluster_nodes
DATABASE_REDIS_CLUSTER_NODES              list   adapter.cluster.nodes queue.redis_cluster.nodes
DATABASE_REDIS_CLUSTER_NODES              nodes  database.redis.cluster.nodes
                                                 database.redis.cluster_nodes
REDIS_CLUSTER_QUEUE_CONCURRENCY           int    queue.redis_cluster.concurrency
REDIS_CLUSTER_QUEUE_REQUEST_TIMEOUT_MS    int    queue.redis_cluster.request_timeout_ms
REDIS_CLUSTER_QUEUE_PREFIX                str    queue.redis_cluster.prefix

DATABASE_MYSQL_HOST                       str    database.mysql.host
DATABASE_MYSQL_PORT                       int    database.mysql.port
DATABASE_MYSQL_USERNAME                   str    database.mysql.username
DATABASE_MYSQL_PASSWORD                   str    database.mysql.password
DATABASE_MYSQL_DATABASE                   str    database.mysql.database
DATABASE_MYSQL_TABLE_NAME                 str    database.mysql.table_name
DATABASE_MYSQL_TABLE_LAYOUT               str    database.mysql.table_layout
DATABASE_MYSQL_POOL_MIN                   int    database.mysql.pool_min
DATABASE_MYSQL_POOL_MAX                   int    database.mysql.pool_max
DATABASE_POSTGRES_HOST                    str    database.postgres.host
DATABASE_POSTGRES_PORT                    int    database.postgres.port
DATABASE_POSTGRES_USERNAME                str    database.postgres.username
DATABASE_POSTGRES_PASSWORD                str    database.postgres.password
DATABASE_POSTGRES_DATABASE                str    database.postgres.database
DATABASE_POSTGRES_POOL_MIN                int    database.postgres.pool_min
DATABASE_POSTGRES_POOL_MAX                int    database.postgres.pool_max
DATABASE_DYNAMODB_REGION                  str    database.dynamodb.region
DATABASE_DYNAMODB_TABLE_NAME              str    database.dynamodb.table_name
DATABASE_DYNAMODB_ENDPOINT_URL            str?   database.dynamodb.endpoint_url
AWS_ACCESS_KEY_ID                         str?   database.dynamodb.aws_access_key_id
AWS_SECRET_ACCESS_KEY                     str?   database.dynamodb.aws_secret_access_key
DATABASE_POOLING_ENABLED                  bool   database_pooling.enabled
DATABASE_POOL_MIN                         int    database_pooling.min
DATABASE_POOL_MAX                         int    database_pooling.max
DATABASE_CONNECTION_POOL_SIZE             int    database.mysql.connection_pool_size
                                                 database.postgres.connection_pool_size

CACHE_TTL_SECONDS                         int    cache.memory.ttl app_manager.cache.ttl
                                                 channel_limits.cache_ttl
                                                 database.mysql.cache_ttl
                                                 database.postgres.cache_ttl
CACHE_CLEANUP_INTERVAL                    int    cache.memory.cleanup_interval
                                                 database.mysql.cache_cleanup_interval
                                                 database.postgres.cache_cleanup_interval
CACHE_MAX_CAPACITY                        int    cache.memory.max_capacity
                                                 database.mysql.cache_max_capacity
                                                 database.postgres.cache_max_capacity

NATS_SERVERS                              list   adapter.nats.servers
NATS_USERNAME                             str?   adapter.nats.username
NATS_PASSWORD                             str?   adapter.nats.password
NATS_TOKEN                                str?   adapter.nats.token
NATS_PREFIX                               str    adapter.nats.prefix
NATS_CONNECTION_TIMEOUT_MS                int    adapter.nats.connection_timeout_ms
NATS_REQUEST_TIMEOUT_MS                   int    adapter.nats.request_timeout_ms
NATS_DISCOVERY_MAX_WAIT_MS                int    adapter.nats.discovery_max_wait_ms
NATS_DISCOVERY_IDLE_WAIT_MS               int    adapter.nats.discovery_idle_wait_ms
NATS_NODES_NUMBER                         int?   adapter.nats.nodes_number
NATS_SUBSCRIPTION_CAPACITY                int?   adapter.nats.subscription_capacity
NATS_CLIENT_CAPACITY                      int?   adapter.nats.client_capacity
NATS_MAX_RECONNECTS                       int?   adapter.nats.max_reconnects
NATS_PRESENCE_SYNC_CHUNK_SIZE             int?   adapter.nats.presence_sync_chunk_size
NATS_NO_ECHO                              bool   adapter.nats.no_echo

SSL_ENABLED                               bool   ssl.enabled
SSL_CERT_PATH                             str    ssl.cert_path
SSL_KEY_PATH                              str    ssl.key_path
SSL_REDIRECT_HTTP                         bool   ssl.redirect_http
SSL_HTTP_PORT                             int    ssl.http_port
UNIX_SOCKET_ENABLED                       bool   unix_socket.enabled
UNIX_SOCKET_PATH                          str    unix_socket.path
UNIX_SOCKET_PERMISSION_MODE               str    unix_socket.permission_mode
METRICS_ENABLED                           bool   metrics.enabled
METRICS_HOST                              str    metrics.host
METRICS_PORT                              int    metrics.port
METRICS_PROMETHEUS_PREFIX                 str    metrics.prometheus.prefix
HTTP_API_USAGE_ENABLED                    bool   http_api.usage_enabled
RATE_LIMITER_ENABLED                      bool   rate_limiter.enabled
RATE_LIMITER_API_MAX_REQUESTS             int    rate_limiter.api_rate_limit.max_requests
RATE_LIMITER_API_WINDOW_SECONDS           int    rate_limiter.api_rate_limit.window_seconds
RATE_LIMITER_API_TRUST_HOPS               int    rate_limiter.api_rate_limit.trust_hops
RATE_LIMITER_WS_MAX_REQUESTS              int    rate_limiter.websocket_rate_limit.max_requests
RATE_LIMITER_WS_WINDOW_SECONDS            int    rate_limiter.websocket_rate_limit.window_seconds
RATE_LIMITER_WS_TRUST_HOPS                int    rate_limiter.websocket_rate_limit.trust_hops
RATE_LIMITER_REDIS_PREFIX                 str    rate_limiter.redis.prefix
PRESENCE_UPDATE_RATE_LIMIT_PER_MEMBER_PER_SECOND int
                                                 presence.update_rate_limit_per_member_per_second
PRESENCE_UNGRACEFUL_TIMEOUT_SECONDS       int    presence.ungraceful_timeout_seconds
PRESENCE_V2_UNGRACEFUL_TIMEOUT_SECONDS    int    presence.v2_ungraceful_timeout_seconds
CORS_ORIGINS                              list   cors.origin
CORS_METHODS                              list   cors.methods
CORS_HEADERS                              list   cors.allowed_headers
CORS_CREDENTIALS                          bool   cors.credentials
CONSOLE_ENABLED                           bool   console.enabled
CONSOLE_ADMIN_TOKEN                       str?   console.admin_token
LOG_COLORS_ENABLED                        bool   logging.colors_enabled
LOG_INCLUDE_TARGET                        bool   logging.include_target
CLUSTER_HEALTH_ENABLED                    bool   cluster_health.enabled
                                                 adapter.cluster_health.enabled
CLUSTER_HEALTH_HEARTBEAT_INTERVAL         int    cluster_health.heartbeat_interval_ms
                                                 adapter.cluster_health.heartbeat_interval_ms
CLUSTER_HEALTH_NODE_TIMEOUT               int    cluster_health.node_timeout_ms
                                                 adapter.cluster_health.node_timeout_ms
CLUSTER_HEALTH_CLEANUP_INTERVAL           int    cluster_health.cleanup_interval_ms
                                                 adapter.cluster_health.cleanup_interval_ms
WEBSOCKET_MAX_MESSAGES                    int    websocket.max_messages
WEBSOCKET_MAX_BYTES                       int?   websocket.max_bytes
WEBSOCKET_DISCONNECT_ON_BUFFER_FULL       bool   websocket.disconnect_on_buffer_full
WEBSOCKET_MAX_MESSAGE_SIZE                int    websocket.max_message_size
WEBSOCKET_MAX_FRAME_SIZE                  int    websocket.max_frame_size
WEBSOCKET_WRITE_BUFFER_SIZE               int    websocket.write_buffer_size
WEBSOCKET_MAX_BACKPRESSURE                int    websocket.max_backpressure
WEBSOCKET_AUTO_PING                       bool   websocket.auto_ping
WEBSOCKET_PING_INTERVAL                   int    websocket.ping_interval
WEBSOCKET_IDLE_TIMEOUT                    int    websocket.idle_timeout
WEBSOCKET_PONG_TIMEOUT                    int    websocket.pong_timeout
WEBSOCKET_COMPRESSION                     str    websocket.compression

QUEUE_REDIS_CONCURRENCY                   int    queue.redis.concurrency
QUEUE_REDIS_RESPONSE_TIMEOUT_MS           int    queue.redis.response_timeout_ms
QUEUE_REDIS_PREFIX                        str    queue.redis.prefix
QUEUE_MAX_ATTEMPTS                        int    queue.reliability.max_attempts
QUEUE_RETRY_BASE_DELAY_MS                 int    queue.reliability.retry_base_delay_ms
QUEUE_RETRY_MAX_DELAY_MS                  int    queue.reliability.retry_max_delay_ms
QUEUE_RETRY_JITTER                        float  queue.reliability.retry_jitter
QUEUE_LEASE_DURATION_MS                   int    queue.reliability.lease_duration_ms
QUEUE_LEASE_RENEW_INTERVAL_MS             int    queue.reliability.lease_renew_interval_ms
QUEUE_STALLED_BATCH_SIZE                  int    queue.reliability.stalled_batch_size
QUEUE_WORKER_POLL_INTERVAL_MS             int    queue.reliability.worker_poll_interval_ms
QUEUE_WORKER_PREFETCH                     int    queue.reliability.worker_prefetch
QUEUE_SHUTDOWN_TIMEOUT_MS                 int    queue.reliability.shutdown_timeout_ms
QUEUE_COMPLETED_RETENTION                 int    queue.reliability.completed_retention
QUEUE_FAILED_RETENTION                    int    queue.reliability.failed_retention
QUEUE_EVENT_RETENTION                     int    queue.reliability.event_retention
QUEUE_DEDUPLICATION_TTL_MS                int    queue.reliability.deduplication_ttl_ms
QUEUE_MEMORY_CAPACITY                     int    queue.reliability.memory_capacity
QUEUE_MAX_BATCH_SIZE                      int    queue.reliability.max_batch_size
QUEUE_SQS_REGION                          str    queue.sqs.region
QUEUE_SQS_QUEUE_URL_PREFIX                str?   queue.sqs.queue_url_prefix
QUEUE_SQS_VISIBILITY_TIMEOUT              int    queue.sqs.visibility_timeout
QUEUE_SQS_MAX_MESSAGES                    int    queue.sqs.max_messages
QUEUE_SQS_WAIT_TIME_SECONDS               int    queue.sqs.wait_time_seconds
QUEUE_SQS_CONCURRENCY                     int    queue.sqs.concurrency
QUEUE_SQS_FIFO                            bool   queue.sqs.fifo
QUEUE_SQS_ENDPOINT_URL                    str?   queue.sqs.endpoint_url
WEBHOOK_BATCHING_ENABLED                  bool   webhooks.batching.enabled
WEBHOOK_BATCHING_DURATION                 int    webhooks.batching.duration
WEBHOOK_BATCHING_SIZE                     int    webhooks.batching.size
"""
"""Every environment override with Sockudo's names, applied in this order to the raw config
before validation. Type ``bool+`` only ever turns the flag on (Sockudo's ``DEBUG``); ``str?`` /
``int?`` read an empty value as null; ``list`` is a comma list; ``nodes`` a comma list of
``host:port`` Redis seeds. A line starting with spaces continues the previous one's paths. The
``SOCKUDO_DEFAULT_APP_*`` family, ``SOCKUDO_SKIP_INLINE_APPS`` and
``APP_MANAGER_REGISTER_INLINE_APPS`` are handled by ``apply_default_app_env``."""


@dataclass(frozen=True)
class EnvVar:
    """One environment override: ``name`` is parsed by ``parse`` and stored at each dotted
    path of ``paths`` in the raw config. ``only_if_true`` applies it only when true."""

    name: str
    parse: Callable[[str], Any]
    paths: tuple[str, ...]
    only_if_true: bool = False


def _parse_env_table(table: str) -> tuple[EnvVar, ...]:
    rows: list[EnvVar] = []
    for line in table.splitlines():
        if not line.strip():
            continue
        if line[0].isspace():  # continuation: more paths for the previous variable
            last = rows.pop()
            rows.append(EnvVar(last.name, last.parse, last.paths + tuple(line.split())))
            continue
        name, kind, *paths = line.split()
        parse = _PARSERS[kind.rstrip("+")]
        rows.append(EnvVar(name, parse, tuple(paths), only_if_true=kind.endswith("+")))
    return tuple(rows)


ENV_OVERRIDES: tuple[EnvVar, ...] = _parse_env_table(_ENV_TABLE)


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Store ``value`` at dotted ``path`` of ``data``, creating (or replacing non-dict)
    intermediate sections."""
    *parents, leaf = path.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = value


def apply_env_overrides(
    data: dict[str, Any], env: Mapping[str, str], sources: dict[str, str] | None = None
) -> list[str]:
    """Apply ``ENV_OVERRIDES`` to the raw config ``data`` in place. Records ``path -> "env
    NAME"`` in ``sources``; returns the problems (``NAME: reason``) of unparsable values."""
    problems: list[str] = []
    for var in ENV_OVERRIDES:
        text = env.get(var.name)
        if text is None:
            continue
        try:
            value = var.parse(text)
        except ValueError as exc:
            problems.append(f"{var.name}: {exc} (from env)")
            continue
        if var.only_if_true and not value:
            continue
        for path in var.paths:
            _set_path(data, path, value)
            if sources is not None:
                sources[path] = f"env {var.name}"
    return problems


DEFAULT_APP_ENV: Mapping[str, tuple[str, Callable[[str], Any]]] = {
    "SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS": ("max_connections", _int),
    "SOCKUDO_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SECOND": ("max_backend_events_per_second", _int),
    "SOCKUDO_DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SECOND": ("max_client_events_per_second", _int),
    "SOCKUDO_DEFAULT_APP_MAX_READ_REQUESTS_PER_SECOND": ("max_read_requests_per_second", _int),
    "SOCKUDO_DEFAULT_APP_MAX_PRESENCE_MEMBERS_PER_CHANNEL": (
        "max_presence_members_per_channel",
        _int,
    ),
    "SOCKUDO_DEFAULT_APP_MAX_PRESENCE_MEMBER_SIZE_IN_KB": (
        "max_presence_member_size_in_kb",
        _float,
    ),
    "SOCKUDO_DEFAULT_APP_MAX_CHANNEL_NAME_LENGTH": ("max_channel_name_length", _int),
    "SOCKUDO_DEFAULT_APP_MAX_EVENT_CHANNELS_AT_ONCE": ("max_event_channels_at_once", _int),
    "SOCKUDO_DEFAULT_APP_MAX_EVENT_NAME_LENGTH": ("max_event_name_length", _int),
    "SOCKUDO_DEFAULT_APP_MAX_EVENT_PAYLOAD_IN_KB": ("max_event_payload_in_kb", _float),
    "SOCKUDO_DEFAULT_APP_MAX_EVENT_BATCH_SIZE": ("max_event_batch_size", _int),
    "SOCKUDO_DEFAULT_APP_ENABLE_CLIENT_MESSAGES": ("enable_client_messages", parse_bool),
    "SOCKUDO_DEFAULT_APP_ENABLE_USER_AUTHENTICATION": ("enable_user_authentication", parse_bool),
    "SOCKUDO_DEFAULT_APP_ENABLE_WATCHLIST_EVENTS": ("enable_watchlist_events", parse_bool),
    "SOCKUDO_DEFAULT_APP_ENABLE_SUBSCRIPTION_COUNT": ("enable_subscription_count", parse_bool),
    "SOCKUDO_DEFAULT_APP_ALLOWED_ORIGINS": ("allowed_origins", _csv),
}
"""Optional fields of the env-defined default app (unset ones take ``App``'s defaults)."""

_CREDENTIALS = ("ID", "KEY", "SECRET")
_APPS_PATH = "app_manager.array.apps"


def _parse_env(env: Mapping[str, str], name: str, parse: Callable[[str], Any]) -> Any:
    try:
        return parse(env[name])
    except ValueError as exc:
        raise ConfigError([f"{name}: {exc} (from env)"]) from None


def _env_app(env: Mapping[str, str], enabled: bool) -> dict[str, Any]:
    """The raw app built from ``SOCKUDO_DEFAULT_APP_*`` (credentials already checked)."""
    app: dict[str, Any] = {
        field.lower(): env[f"SOCKUDO_DEFAULT_APP_{field}"] for field in _CREDENTIALS
    }
    app["enabled"] = enabled
    if "SOCKUDO_ENABLE_CLIENT_MESSAGES" in env:
        app["enable_client_messages"] = _parse_env(
            env, "SOCKUDO_ENABLE_CLIENT_MESSAGES", parse_bool
        )
    for name, (field, parse) in DEFAULT_APP_ENV.items():
        if name in env:
            app[field] = _parse_env(env, name, parse)
    return app


def apply_default_app_env(
    data: dict[str, Any], env: Mapping[str, str], sources: dict[str, str] | None = None
) -> None:
    """Sockudo's default-app bootstrap, on the raw config ``data``.

    * ``SOCKUDO_SKIP_INLINE_APPS=true`` or ``APP_MANAGER_REGISTER_INLINE_APPS=false`` clear the
      inline apps.
    * Any of ``SOCKUDO_DEFAULT_APP_ID|KEY|SECRET`` replaces the inline apps with one app built
      from the ``SOCKUDO_DEFAULT_APP_*`` variables; all three are then required.
    * ``SOCKUDO_DEFAULT_APP_ENABLED=false`` clears the inline apps (and registers none), as in
      Sockudo; with credentials set it still only clears them.
    """
    skip = env.get("SOCKUDO_SKIP_INLINE_APPS")
    register = env.get("APP_MANAGER_REGISTER_INLINE_APPS")
    if (skip is not None and _parse_env(env, "SOCKUDO_SKIP_INLINE_APPS", parse_bool)) or (
        register is not None and not _parse_env(env, "APP_MANAGER_REGISTER_INLINE_APPS", parse_bool)
    ):
        _set_path(data, _APPS_PATH, [])
        _record(sources, _APPS_PATH, "env SOCKUDO_SKIP_INLINE_APPS")

    names = [f"SOCKUDO_DEFAULT_APP_{field}" for field in _CREDENTIALS]
    given = [name for name in names if name in env]
    enabled = True
    if "SOCKUDO_DEFAULT_APP_ENABLED" in env:
        enabled = _parse_env(env, "SOCKUDO_DEFAULT_APP_ENABLED", parse_bool)
    if not given and enabled:
        return
    apps: list[dict[str, Any]] = []
    if given and enabled:
        missing = [name for name in names if name not in given]
        if missing:
            raise ConfigError(
                [f"{name}: required when {', '.join(given)} is set (from env)" for name in missing]
            )
        apps = [_env_app(env, enabled)]
    _set_path(data, _APPS_PATH, apps)
    _record(sources, _APPS_PATH, "env SOCKUDO_DEFAULT_APP_*")


def env_names() -> frozenset[str]:
    """Every environment variable ``load_config`` reads by name (``${VAR}`` substitutions in
    the file aside): ``ENV_OVERRIDES`` and the default-app bootstrap."""
    return frozenset(
        {var.name for var in ENV_OVERRIDES}
        | set(DEFAULT_APP_ENV)
        | {f"SOCKUDO_DEFAULT_APP_{field}" for field in (*_CREDENTIALS, "ENABLED")}
        | {
            "SOCKUDO_ENABLE_CLIENT_MESSAGES",
            "SOCKUDO_SKIP_INLINE_APPS",
            "APP_MANAGER_REGISTER_INLINE_APPS",
        }
    )


def _record(sources: dict[str, str] | None, path: str, source: str) -> None:
    if sources is not None:
        sources[path] = source


# --------------------------------------------------------------------------------------------
# File reading and ${VAR} substitution
# --------------------------------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def substitute_env(text: str, env: Mapping[str, str]) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in ``text`` (the raw file, before parsing,
    so ``"port": ${PORT:-6001}`` works). An unset ``${VAR}`` without a default is a
    ``ConfigError`` naming every such variable."""
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        missing.append(name)
        return match.group(0)

    result = _VAR.sub(replace, text)
    if missing:
        raise ConfigError(
            [f"${{{name}}}: environment variable is not set and has no default" for name in missing]
        )
    return result


def read_config_file(path: str, env: Mapping[str, str]) -> dict[str, Any]:
    """Read, substitute and parse a config file (``.toml`` as TOML, anything else as JSON)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read config file: {exc.strerror or exc}"]) from exc
    text = substitute_env(text, env)
    try:
        data = tomllib.loads(text) if path.endswith(".toml") else json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            [f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"]
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: invalid TOML: {exc}"]) from exc
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be an object"])
    return data


# --------------------------------------------------------------------------------------------
# Unknown keys
# --------------------------------------------------------------------------------------------


def _known_keys(model: type[BaseModel]) -> set[str]:
    keys: set[str] = set()
    for name, info in model.model_fields.items():
        keys.add(name)
        alias = info.validation_alias
        if isinstance(alias, str):
            keys.add(alias)
        elif isinstance(alias, AliasChoices):
            keys.update(choice for choice in alias.choices if isinstance(choice, str))
    if model is App:
        keys.add("policy")
    return keys


def _field_for_key(model: type[BaseModel], key: str) -> Any:
    """The annotation of the field that ``key`` (a name or an alias) fills, if any."""
    for name, info in model.model_fields.items():
        alias = info.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        if key == name or key in choices:
            return info.annotation
    return None


def _models_in(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """``(Model, is_list)`` for ``Model``, ``Model | None`` or ``list[Model]``."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            found = _models_in(arg)
            if found[0] is not None:
                return found
        return None, False
    if origin is list:
        inner, _ = _models_in(get_args(annotation)[0])
        return inner, inner is not None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    return None, False


def unknown_keys(
    data: Mapping[str, Any], model: type[BaseModel] = Config, prefix: str = ""
) -> Iterator[tuple[str, bool]]:
    """Walk raw ``data`` against ``model``: yield ``(dotted_path, sockudo_only)`` for each key
    the model does not know. ``sockudo_only`` marks keys Sockudo knows and we ignore."""
    known = _known_keys(model)
    sockudo_only: frozenset[str] = getattr(model, "sockudo_only_keys", frozenset())
    for key, value in data.items():
        path = f"{prefix}{key}"
        if model is App and key == "policy" and isinstance(value, dict):
            yield from _unknown_policy_keys(value, f"{path}.")
            continue
        if key not in known:
            yield path, key in sockudo_only
            continue
        sub, is_list = _models_in(_field_for_key(model, key))
        if sub is None:
            continue
        if is_list and isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    yield from unknown_keys(item, sub, f"{path}.{index}.")
        elif isinstance(value, dict):
            yield from unknown_keys(value, sub, f"{path}.")


def _unknown_policy_keys(policy: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, bool]]:
    """Sockudo's app ``policy``: its groups hold flat ``App`` fields."""
    for key, value in policy.items():
        if key in _POLICY_GROUPS and isinstance(value, dict):
            yield from unknown_keys(value, App, f"{prefix}{key}.")
        elif key == "webhooks":
            yield from unknown_keys({key: value}, App, prefix)
        else:
            yield f"{prefix}{key}", key in App.sockudo_only_keys


def warn_unknown_keys(data: Mapping[str, Any]) -> None:
    """Log each unknown key of the raw config by dotted path (debug only for Sockudo keys
    sockudo-py does not implement)."""
    for path, sockudo_only in unknown_keys(data):
        if sockudo_only:
            logger.debug(
                "config key %s is a Sockudo feature sockudo-py does not implement; ignored", path
            )
        else:
            logger.warning("unknown config key %s (ignored)", path)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _dotted(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _has_path(data: Any, loc: tuple[int | str, ...]) -> bool:
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if not (in_dict or in_list):
            return False
        node = node[part]
    return True


def _source_of(
    path: str,
    sources: Mapping[str, str],
    file_data: Any,
    loc: tuple[int | str, ...],
    file_path: str | None,
) -> str:
    """Where the value at ``path`` came from: the env variable, the file or the defaults."""
    best = max((p for p in sources if path == p or path.startswith(p + ".")), key=len, default=None)
    if best is not None:
        return sources[best]
    if file_path is not None and _has_path(file_data, loc):
        return f"file {file_path}"
    return "defaults"


def _problems(
    exc: ValidationError, sources: Mapping[str, str], file_data: Any, file_path: str | None
) -> list[str]:
    errors = exc.errors()
    top_level = {tuple(e["loc"]) for e in errors if e["loc"][:1] == ("cluster_health",)}
    problems = []
    for error in errors:
        loc = error["loc"]
        if loc[:2] == ("adapter", "cluster_health") and loc[1:] in top_level:
            continue  # the same cluster_health block, reported once at the top level
        path = _dotted(loc) or "(root)"
        message = error["msg"].removeprefix("Value error, ")
        origin = _source_of(path, sources, file_data, loc, file_path)
        problems.append(f"{path}: {message} (from {origin})")
    return problems


def _drop_embedded_app(data: dict[str, Any]) -> None:
    """The embedded default app only makes sense with the memory app manager: with a database
    driver and no inline apps given, register none."""
    manager = data.get("app_manager")
    if not isinstance(manager, dict):
        return
    driver = manager.get("driver", "memory")
    array = manager.get("array")
    has_apps = isinstance(array, dict) and "apps" in array
    if (
        isinstance(driver, str)
        and driver.strip().lower() not in ("memory", "array")
        and not has_apps
    ):
        _set_path(data, _APPS_PATH, [])


def load_config(path: str | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Build the configuration: defaults, then the file at ``path`` (``${VAR:-default}``
    substituted), then the environment ``env`` (``os.environ`` when None; tests pass dicts).

    Logs unknown keys (warning, by dotted path) and the start-up warnings of
    ``warnings_for``. Raises ``ConfigError`` listing every ``key.path: reason (from source)``.
    """
    env = os.environ if env is None else env
    file_data = read_config_file(path, env) if path else {}
    warn_unknown_keys(file_data)

    data = json.loads(json.dumps(file_data))  # a deep copy that env overrides may change
    sources: dict[str, str] = {}
    problems = apply_env_overrides(data, env, sources)
    if problems:
        raise ConfigError(problems)
    apply_default_app_env(data, env, sources)
    _drop_embedded_app(data)

    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_problems(exc, sources, file_data, path)) from None
    for warning in warnings_for(config):
        logger.warning(warning)
    return config


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def warnings_for(config: Config) -> list[str]:
    """Start-up warnings about a valid but risky configuration (``load_config`` logs them)."""
    warnings = []
    public_defaults = [
        app.id for app in config.app_manager.array.apps if app.secret == DEFAULT_APP_SECRET
    ]
    if public_defaults and not is_loopback(config.host):
        warnings.append(
            f"!!! SECURITY: app(s) {', '.join(public_defaults)} use the public default secret "
            f"'{DEFAULT_APP_SECRET}' while listening on {config.host}, which other machines can "
            "reach: anyone can sign HTTP API calls and channel auth for them. Set "
            "SOCKUDO_DEFAULT_APP_ID/KEY/SECRET or configure app_manager.array.apps with your "
            "own secret. !!!"
        )
    return warnings
