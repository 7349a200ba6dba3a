"""Configuration: pydantic models of Sockudo's ``config.json`` sections.

Field names follow Sockudo's config.json; per-app fields also accept soketi's camelCase
(and PascalCase) spellings. Loading, ``${VAR:-default}`` substitution and env overrides are
in ``load_config``.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, AliasGenerator, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel, to_pascal


def _app_aliases(name: str) -> AliasChoices:
    return AliasChoices(name, to_camel(name), to_pascal(name))


class Section(BaseModel):
    """Base of every config section: unknown keys are ignored here (and warned about by
    ``load_config``), values are validated strictly enough to name the bad key path."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)


class WebhookFilter(Section):
    channel_name_starts_with: str | None = None
    channel_name_ends_with: str | None = None


class Webhook(Section):
    """One webhook endpoint of an app."""

    url: str | None = None
    lambda_function: str | None = None
    event_types: list[str] = Field(default_factory=list)
    filter: WebhookFilter | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class App(BaseModel):
    """One tenant: credentials, feature switches and limits.

    ``0`` for ``max_connections`` and ``max_client_events_per_second`` means unlimited. An app
    without ``enabled`` is enabled.
    """

    model_config = ConfigDict(
        extra="ignore",
        alias_generator=AliasGenerator(validation_alias=_app_aliases),
        populate_by_name=True,
    )

    id: str
    key: str
    secret: str
    enabled: bool = True
    max_connections: int = 0
    enable_client_messages: bool = False
    enable_user_authentication: bool = False
    enable_watchlist_events: bool = False
    enable_subscription_count: bool = False
    max_client_events_per_second: int = 0
    decay_seconds: int = 1
    terminate_on_limit: bool = False
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


def default_app() -> App:
    """The embedded default tenant."""
    return App(id="app-id", key="app-key", secret="app-secret", enable_client_messages=True)


class AppArray(Section):
    apps: list[App] = Field(default_factory=lambda: [default_app()])


class AppManagerCache(Section):
    enabled: bool = False
    ttl: int = 300


class AppManagerConfig(Section):
    driver: str = "memory"
    array: AppArray = Field(default_factory=AppArray)
    cache: AppManagerCache = Field(default_factory=AppManagerCache)


class AdapterConfig(Section):
    driver: str = "local"


class MemoryCacheConfig(Section):
    ttl: int = 300
    cleanup_interval: int = 60
    max_capacity: int = 10000


class CacheConfig(Section):
    driver: str = "memory"
    memory: MemoryCacheConfig = Field(default_factory=MemoryCacheConfig)


class ChannelLimits(Section):
    max_name_length: int = 200
    cache_ttl: int = 3600


class HttpApiConfig(Section):
    request_limit_in_mb: float = 10
    usage_enabled: bool = True


class WebSocketConfig(Section):
    """Per-socket outbound buffer: at most ``max_messages`` frames or ``max_bytes`` bytes queued."""

    max_messages: int = 1000
    max_bytes: int | None = 4 * 1024 * 1024
    disconnect_on_buffer_full: bool = True


class MetricsConfig(Section):
    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = 9601


class InstanceConfig(Section):
    process_id: str | None = None


class Config(Section):
    """The whole server configuration (the root of config.json)."""

    debug: bool = False
    host: str = "0.0.0.0"
    port: int = 6001
    max_connections: int = 0
    activity_timeout: int = 120
    user_authentication_timeout: int = 3600
    shutdown_grace_period: float = 10
    websocket_max_payload_kb: int = 64
    instance: InstanceConfig = Field(default_factory=InstanceConfig)
    adapter: AdapterConfig = Field(default_factory=AdapterConfig)
    app_manager: AppManagerConfig = Field(default_factory=AppManagerConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    channel_limits: ChannelLimits = Field(default_factory=ChannelLimits)
    http_api: HttpApiConfig = Field(default_factory=HttpApiConfig)
    websocket: WebSocketConfig = Field(default_factory=WebSocketConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)


def load_config(path: str | None = None, env: dict[str, str] | None = None) -> Config:
    """Build the configuration: defaults, then the JSON file at ``path``, then ``env``."""
    import json

    data: dict[str, Any] = {}
    if path:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    return Config.model_validate(data)
