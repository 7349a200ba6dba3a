"""Configuration: defaults, file loading, ${VAR} substitution, env overrides, apps, errors."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from sockudo_py.config import (
    ENV_OVERRIDES,
    App,
    Config,
    ConfigError,
    default_app,
    is_loopback,
    load_config,
    parse_bool,
    unknown_keys,
    warnings_for,
)

ROOT = Path(__file__).resolve().parent.parent


def write_json(tmp_path: Path, data: Any, name: str = "config.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def app_dict(**fields: Any) -> dict[str, Any]:
    return {"id": "1", "key": "k", "secret": "s", **fields}


# --- defaults --------------------------------------------------------------------------------


def test_embedded_defaults() -> None:
    config = Config()
    assert (config.host, config.port, config.mode) == ("0.0.0.0", 6001, "production")
    assert config.adapter.driver == "local"
    assert config.app_manager.driver == config.cache.driver == config.queue.driver == "memory"
    assert config.rate_limiter.enabled is False
    assert config.rate_limiter.driver == "memory"
    assert (config.metrics.enabled, config.metrics.port) == (True, 9601)
    assert config.metrics.prometheus.prefix == "sockudo_"
    assert config.app_manager.array.apps == [default_app()]
    assert default_app().enable_client_messages is True
    assert config.webhooks.batching.duration == 50 and config.webhooks.batching.size == 100
    assert config.webhooks.retry.max_elapsed_time_ms == 300_000
    assert config.queue.sqs.region == "us-east-1" and config.queue.sqs.max_messages == 10
    assert config.database.redis.port == 6379 and config.database.postgres.port == 5432
    assert config.adapter.nats.servers == ["nats://localhost:4222"]
    assert config.cluster_health == config.adapter.cluster_health
    assert config.cors.origin == ["*"]


def test_load_config_without_file_or_env_is_the_default() -> None:
    assert load_config(env={}) == Config()


def test_root_config_json_is_the_default_and_documents_every_section() -> None:
    path = ROOT / "config.json"
    assert load_config(str(path), env={}) == Config()
    assert set(json.loads(path.read_text(encoding="utf-8"))) == set(Config.model_fields)


# --- files and substitution ------------------------------------------------------------------


def test_file_values_override_defaults_and_the_rest_stays(tmp_path: Path) -> None:
    path = write_json(
        tmp_path,
        {
            "port": 7001,
            "adapter": {"driver": "redis", "redis": {"prefix": "x:"}},
            "app_manager": {"array": {"apps": [app_dict(max_connections=5)]}},
        },
    )
    config = load_config(path, env={})
    assert config.port == 7001
    assert config.adapter.driver == "redis"
    assert config.adapter.redis.prefix == "x:"
    assert config.adapter.redis.requests_timeout == 5000
    assert [a.id for a in config.app_manager.array.apps] == ["1"]
    assert config.app_manager.array.apps[0].max_connections == 5


def test_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("port = 7002\n[metrics]\nport = 9700\n", encoding="utf-8")
    config = load_config(str(path), env={})
    assert (config.port, config.metrics.port) == (7002, 9700)


def test_substitution_with_values_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(
        '{"port": ${PORT_X:-6100}, "host": "${HOST_X}", "mode": "${MODE_X:-}",'
        ' "metrics": {"port": ${METRICS_X:-9700}}}',
        encoding="utf-8",
    )
    config = load_config(str(path), env={"HOST_X": "127.0.0.1", "METRICS_X": "9800"})
    assert (config.port, config.host, config.mode) == (6100, "127.0.0.1", "")
    assert config.metrics.port == 9800


def test_unresolved_variable_names_it(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"host": "${NOPE_HOST}", "port": ${NOPE_PORT}}', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(str(path), env={})
    assert "NOPE_HOST" in str(info.value) and "NOPE_PORT" in str(info.value)


def test_invalid_json_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"port": 6001,,}', encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid JSON at line 1"):
        load_config(str(path), env={})
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(str(tmp_path / "missing.json"), env={})


# --- env overrides ---------------------------------------------------------------------------

ENV_CASES: list[tuple[dict[str, str], Callable[[Config], Any], Any]] = [
    ({"HOST": "127.0.0.1"}, lambda c: c.host, "127.0.0.1"),
    ({"PORT": "7005"}, lambda c: c.port, 7005),
    ({"DEBUG_MODE": "yes"}, lambda c: c.debug, True),
    ({"ENVIRONMENT": "development"}, lambda c: c.mode, "development"),
    ({"ACTIVITY_TIMEOUT": "30"}, lambda c: c.activity_timeout, 30),
    ({"SHUTDOWN_GRACE_PERIOD": "2.5"}, lambda c: c.shutdown_grace_period, 2.5),
    ({"USER_AUTHENTICATION_TIMEOUT": "60"}, lambda c: c.user_authentication_timeout, 60),
    ({"WEBSOCKET_MAX_PAYLOAD_KB": "128"}, lambda c: c.websocket_max_payload_kb, 128),
    ({"SOCKUDO_MAX_CONNECTIONS": "4"}, lambda c: c.max_connections, 4),
    ({"INSTANCE_PROCESS_ID": "node-a"}, lambda c: c.instance.process_id, "node-a"),
    ({"ADAPTER_DRIVER": "nats"}, lambda c: c.adapter.driver, "nats"),
    ({"CACHE_DRIVER": "redis"}, lambda c: c.cache.driver, "redis"),
    ({"QUEUE_DRIVER": "sqs"}, lambda c: c.queue.driver, "sqs"),
    ({"APP_MANAGER_DRIVER": "mysql"}, lambda c: c.app_manager.driver, "mysql"),
    ({"RATE_LIMITER_DRIVER": "redis"}, lambda c: c.rate_limiter.driver, "redis"),
    ({"DATABASE_REDIS_HOST": "r1"}, lambda c: c.database.redis.host, "r1"),
    ({"DATABASE_REDIS_PORT": "6380"}, lambda c: c.database.redis.port, 6380),
    ({"DATABASE_REDIS_DB": "3"}, lambda c: c.database.redis.db, 3),
    ({"DATABASE_REDIS_PASSWORD": "pw"}, lambda c: c.database.redis.password, "pw"),
    ({"DATABASE_MYSQL_HOST": "db"}, lambda c: c.database.mysql.host, "db"),
    ({"DATABASE_MYSQL_TABLE_NAME": "apps"}, lambda c: c.database.mysql.table_name, "apps"),
    ({"DATABASE_MYSQL_POOL_MAX": "20"}, lambda c: c.database.mysql.pool_max, 20),
    ({"DATABASE_DYNAMODB_REGION": "eu-west-1"}, lambda c: c.database.dynamodb.region, "eu-west-1"),
    (
        {"DATABASE_DYNAMODB_ENDPOINT_URL": "http://localhost:8000"},
        lambda c: c.database.dynamodb.endpoint_url,
        "http://localhost:8000",
    ),
    (
        {"NATS_SERVERS": "nats://a:4222, nats://b:4222"},
        lambda c: c.adapter.nats.servers,
        ["nats://a:4222", "nats://b:4222"],
    ),
    ({"NATS_NODES_NUMBER": "3"}, lambda c: c.adapter.nats.nodes_number, 3),
    ({"NATS_TOKEN": "t"}, lambda c: c.adapter.nats.token, "t"),
    ({"METRICS_ENABLED": "off"}, lambda c: c.metrics.enabled, False),
    ({"METRICS_HOST": "127.0.0.1"}, lambda c: c.metrics.host, "127.0.0.1"),
    ({"METRICS_PORT": "9700"}, lambda c: c.metrics.port, 9700),
    ({"METRICS_PROMETHEUS_PREFIX": "py_"}, lambda c: c.metrics.prometheus.prefix, "py_"),
    ({"RATE_LIMITER_ENABLED": "1"}, lambda c: c.rate_limiter.enabled, True),
    (
        {"RATE_LIMITER_API_MAX_REQUESTS": "5"},
        lambda c: c.rate_limiter.api_rate_limit.max_requests,
        5,
    ),
    (
        {"RATE_LIMITER_WS_TRUST_HOPS": "2"},
        lambda c: c.rate_limiter.websocket_rate_limit.trust_hops,
        2,
    ),
    (
        {"CORS_ORIGINS": "https://a.com,https://*.b.com"},
        lambda c: c.cors.origin,
        ["https://a.com", "https://*.b.com"],
    ),
    ({"CORS_CREDENTIALS": "false"}, lambda c: c.cors.credentials, False),
    ({"WEBHOOK_BATCHING_ENABLED": "no"}, lambda c: c.webhooks.batching.enabled, False),
    ({"WEBHOOK_BATCHING_DURATION": "10"}, lambda c: c.webhooks.batching.duration, 10),
    ({"QUEUE_SQS_REGION": "eu-central-1"}, lambda c: c.queue.sqs.region, "eu-central-1"),
    ({"QUEUE_SQS_FIFO": "true"}, lambda c: c.queue.sqs.fifo, True),
    ({"WEBSOCKET_MAX_MESSAGES": "10"}, lambda c: c.websocket.max_messages, 10),
    ({"WEBSOCKET_MAX_BYTES": ""}, lambda c: c.websocket.max_bytes, None),
    ({"HTTP_API_USAGE_ENABLED": "0"}, lambda c: c.http_api.usage_enabled, False),
    ({"SSL_HTTP_PORT": "8080"}, lambda c: c.ssl.http_port, 8080),
    ({"CLUSTER_HEALTH_ENABLED": "false"}, lambda c: c.adapter.cluster_health.enabled, False),
    (
        {"CLUSTER_HEALTH_HEARTBEAT_INTERVAL": "1000"},
        lambda c: c.cluster_health.heartbeat_interval_ms,
        1000,
    ),
]


@pytest.mark.parametrize(("env", "get", "expected"), ENV_CASES)
def test_env_override(env: dict[str, str], get: Callable[[Config], Any], expected: Any) -> None:
    assert get(load_config(env=env)) == expected


def test_env_wins_over_file(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"port": 7001, "adapter": {"driver": "redis"}})
    config = load_config(path, env={"PORT": "7002", "ADAPTER_DRIVER": "local"})
    assert (config.port, config.adapter.driver) == (7002, "local")


def test_several_env_vars_at_once() -> None:
    config = load_config(
        env={"HOST": "10.0.0.1", "PORT": "1234", "QUEUE_DRIVER": "redis", "METRICS_PORT": "9999"}
    )
    assert (config.host, config.port, config.queue.driver, config.metrics.port) == (
        "10.0.0.1", 1234, "redis", 9999,
    )  # fmt: skip


def test_debug_only_forces_debug_on() -> None:
    assert load_config(env={"DEBUG": "true"}).debug is True
    assert load_config(env={"DEBUG_MODE": "true", "DEBUG": "false"}).debug is True
    assert load_config(env={"DEBUG_MODE": "false"}).debug is False


def test_redis_url_reaches_every_redis_driver() -> None:
    config = load_config(env={"REDIS_URL": "redis://r:6380/2"})
    assert config.database.redis.url == "redis://r:6380/2"
    assert config.cache.redis.url_override == config.queue.redis.url_override == "redis://r:6380/2"
    assert config.rate_limiter.redis.url_override == "redis://r:6380/2"
    assert config.adapter.redis.redis_pub_options == {"url": "redis://r:6380/2"}
    assert config.redis_url() == "redis://r:6380/2"
    assert config.redis_url("redis://other") == "redis://other"


def test_redis_url_built_from_fields() -> None:
    config = load_config(
        env={
            "DATABASE_REDIS_HOST": "h",
            "DATABASE_REDIS_PASSWORD": "p@ss",
            "DATABASE_REDIS_DB": "1",
        }
    )
    assert config.redis_url() == "redis://:p%40ss@h:6379/1"


def test_redis_cluster_nodes_as_strings_and_objects() -> None:
    config = load_config(env={"REDIS_CLUSTER_NODES": "10.0.0.1:7000, 10.0.0.2"})
    assert config.adapter.cluster.nodes == ["10.0.0.1:7000", "10.0.0.2"]
    assert config.queue.redis_cluster.nodes == ["10.0.0.1:7000", "10.0.0.2"]
    nodes = [(n.host, n.port) for n in config.database.redis.cluster_nodes]
    assert nodes == [("10.0.0.1", 7000), ("10.0.0.2", 6379)]
    assert config.database.redis.cluster_seeds() == config.database.redis.cluster.nodes


def test_cache_ttl_seconds_sets_every_cache_ttl() -> None:
    config = load_config(env={"CACHE_TTL_SECONDS": "42"})
    assert config.cache.memory.ttl == config.app_manager.cache.ttl == 42
    assert config.channel_limits.cache_ttl == config.database.mysql.cache_ttl == 42


@pytest.mark.parametrize(
    ("name", "value"),
    [("PORT", "abc"), ("METRICS_ENABLED", "maybe"), ("SHUTDOWN_GRACE_PERIOD", "soon")],
)
def test_bad_env_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_config(env={name: value})


def test_env_value_out_of_range_names_path_and_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={"PORT": "70000"})
    assert "port: Input should be less than or equal to 65535 (from env PORT)" in str(info.value)


@pytest.mark.parametrize("text", ["true", "1", "YES", "on", " On "])
def test_true_spellings(text: str) -> None:
    assert parse_bool(text) is True


@pytest.mark.parametrize("text", ["false", "0", "No", "off"])
def test_false_spellings(text: str) -> None:
    assert parse_bool(text) is False


def test_env_table_paths_exist_in_the_models() -> None:
    defaults = Config().model_dump()
    for var in ENV_OVERRIDES:
        for path in var.paths:
            node: Any = defaults
            *parents, leaf = path.split(".")
            for part in parents:
                node = node[part]
            assert leaf in node or parents[-1].endswith("_options"), (var.name, path)


# --- default app from env --------------------------------------------------------------------


def test_default_app_env_replaces_inline_apps(tmp_path: Path) -> None:
    path = write_json(
        tmp_path, {"app_manager": {"array": {"apps": [app_dict(), app_dict(id="2")]}}}
    )
    env = {
        "SOCKUDO_DEFAULT_APP_ID": "42",
        "SOCKUDO_DEFAULT_APP_KEY": "key42",
        "SOCKUDO_DEFAULT_APP_SECRET": "secret42",
        "SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS": "10",
        "SOCKUDO_DEFAULT_APP_ENABLE_USER_AUTHENTICATION": "true",
        "SOCKUDO_DEFAULT_APP_ENABLE_SUBSCRIPTION_COUNT": "on",
        "SOCKUDO_DEFAULT_APP_ALLOWED_ORIGINS": "https://a.com, https://b.com",
        "SOCKUDO_DEFAULT_APP_MAX_EVENT_PAYLOAD_IN_KB": "50",
    }
    (app,) = load_config(path, env=env).app_manager.array.apps
    assert (app.id, app.key, app.secret, app.enabled) == ("42", "key42", "secret42", True)
    assert app.max_connections == 10
    assert app.enable_user_authentication and app.enable_subscription_count
    assert app.allowed_origins == ["https://a.com", "https://b.com"]
    assert app.max_event_payload_in_kb == 50
    assert app.enable_client_messages is False
    assert app.max_channel_name_length == 200  # unset limits take App's defaults


def test_default_app_client_messages_fallback() -> None:
    creds = {
        "SOCKUDO_DEFAULT_APP_ID": "1",
        "SOCKUDO_DEFAULT_APP_KEY": "k",
        "SOCKUDO_DEFAULT_APP_SECRET": "s",
    }
    (app,) = load_config(
        env={**creds, "SOCKUDO_ENABLE_CLIENT_MESSAGES": "true"}
    ).app_manager.array.apps
    assert app.enable_client_messages is True
    env = {
        **creds,
        "SOCKUDO_ENABLE_CLIENT_MESSAGES": "true",
        "SOCKUDO_DEFAULT_APP_ENABLE_CLIENT_MESSAGES": "false",
    }
    (app,) = load_config(env=env).app_manager.array.apps
    assert app.enable_client_messages is False


def test_default_app_needs_all_three_credentials() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={"SOCKUDO_DEFAULT_APP_ID": "1", "SOCKUDO_DEFAULT_APP_KEY": "k"})
    assert "SOCKUDO_DEFAULT_APP_SECRET" in str(info.value)


def test_default_app_disabled_clears_apps() -> None:
    assert load_config(env={"SOCKUDO_DEFAULT_APP_ENABLED": "false"}).app_manager.array.apps == []


def test_skip_inline_apps() -> None:
    assert load_config(env={"SOCKUDO_SKIP_INLINE_APPS": "true"}).app_manager.array.apps == []
    assert load_config(env={"SOCKUDO_SKIP_INLINE_APPS": "false"}).app_manager.array.apps == [
        default_app()
    ]


def test_bad_default_app_value_names_the_variable() -> None:
    env = {
        "SOCKUDO_DEFAULT_APP_ID": "1",
        "SOCKUDO_DEFAULT_APP_KEY": "k",
        "SOCKUDO_DEFAULT_APP_SECRET": "s",
        "SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS": "lots",
    }
    with pytest.raises(ConfigError, match="SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS"):
        load_config(env=env)


def test_database_app_manager_drops_the_embedded_app(tmp_path: Path) -> None:
    assert load_config(env={"APP_MANAGER_DRIVER": "mysql"}).app_manager.array.apps == []
    path = write_json(
        tmp_path, {"app_manager": {"driver": "dynamodb", "array": {"apps": [app_dict()]}}}
    )
    assert len(load_config(path, env={}).app_manager.array.apps) == 1


# --- per-app aliases ---------------------------------------------------------------------------


def test_camel_and_pascal_case_app_fields() -> None:
    camel = App.model_validate(
        {
            "id": "1",
            "key": "k",
            "secret": "s",
            "maxConnections": 50,
            "enableClientMessages": True,
            "enableUserAuthentication": True,
            "maxBackendEventsPerSecond": 10,
            "maxClientEventsPerSecond": -1,
            "maxReadRequestsPerSecond": -1,
            "maxPresenceMembersPerChannel": 5,
            "maxPresenceMemberSizeInKb": 1,
            "maxChannelNameLength": 100,
            "maxEventChannelsAtOnce": 3,
            "maxEventNameLength": 50,
            "maxEventPayloadInKb": 10,
            "maxEventBatchSize": 2,
        }
    )
    assert camel.max_connections == 50 and camel.enable_client_messages
    assert camel.enable_user_authentication
    assert camel.max_backend_events_per_second == 10
    assert camel.max_client_events_per_second == 0  # -1 = unlimited
    assert camel.max_read_requests_per_second is None
    assert (camel.max_presence_members_per_channel, camel.max_event_batch_size) == (5, 2)
    pascal = App.model_validate(
        {"AppId": 7, "AppKey": "k", "AppSecret": "s", "MaxConnections": -1, "Enabled": False}
    )
    assert (pascal.id, pascal.max_connections, pascal.enabled) == ("7", 0, False)


def test_soketi_database_columns() -> None:
    app = App.model_validate(
        app_dict(
            max_backend_events_per_sec=5,
            max_client_events_per_sec=6,
            max_read_req_per_sec=7,
            webhooks='[{"url": "http://h/hook", "event_types": ["channel_occupied"]}]',
        )
    )
    assert app.max_backend_events_per_second == 5
    assert app.max_client_events_per_second == 6
    assert app.max_read_requests_per_second == 7
    assert app.webhooks[0].url == "http://h/hook"


def test_app_without_enabled_is_enabled_and_null_max_connections_is_unlimited() -> None:
    app = App.model_validate(app_dict(max_connections=None))
    assert app.enabled is True and app.max_connections == 0


def test_sockudo_policy_shape_is_flattened() -> None:
    app = App.model_validate(
        app_dict(
            max_connections=1,
            policy={
                "limits": {"max_connections": 9, "max_client_events_per_second": 3},
                "features": {"enable_client_messages": True},
                "channels": {"allowed_origins": ["https://a.com"]},
                "webhooks": [{"url": "http://h"}],
            },
        )
    )
    assert (app.max_connections, app.max_client_events_per_second) == (9, 3)
    assert app.enable_client_messages and app.allowed_origins == ["https://a.com"]
    assert app.webhooks[0].url == "http://h"


def test_webhook_accepts_soketi_and_sockudo_fields() -> None:
    app = App.model_validate(
        app_dict(
            webhooks=[
                {
                    "url": "http://h",
                    "event_types": ["member_added"],
                    "filter": {"channel_name_starts_with": "presence-", "channel_suffix": "-x"},
                    "headers": {"X-Token": "t"},
                },
                {"lambda_function": "fn", "lambda": {"async": False, "region": "eu-west-1"}},
            ]
        )
    )
    http, lam = app.webhooks
    assert http.filter is not None
    assert (http.filter.channel_name_starts_with, http.filter.channel_name_ends_with) == (
        "presence-", "-x",
    )  # fmt: skip
    assert http.headers == {"X-Token": "t"}
    assert lam.lambda_function == "fn"
    assert lam.lambda_ is not None and lam.lambda_.region == "eu-west-1"
    assert lam.lambda_.async_ is False


# --- unknown keys and errors -------------------------------------------------------------------


def test_unknown_keys_are_warned_by_path(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_json(
        tmp_path,
        {
            "bogus": 1,
            "adapter": {"redis": {"prefx": "x"}},
            "app_manager": {"array": {"apps": [app_dict(maxConnections=3, colour="red")]}},
        },
    )
    with caplog.at_level(logging.DEBUG, logger="sockudo_py.config"):
        load_config(path, env={})
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("bogus" in m for m in warned)
    assert any("adapter.redis.prefx" in m for m in warned)
    assert any("app_manager.array.apps.0.colour" in m for m in warned)
    assert not any("maxConnections" in m for m in warned)


def test_sockudo_config_loads_without_unknown_key_warnings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A Sockudo config.json (with V2 sections and keys we do not implement) loads quietly."""
    sockudo = {
        "debug": False,
        "host": "127.0.0.1",
        "mode": "production",
        "path_prefix": "/",
        "unix_socket": {"enabled": False, "path": "/tmp/s.sock", "permission_mode": "660"},
        "adapter": {
            "driver": "local",
            "redis": {"requests_timeout": 5000, "redis_pub_options": {}, "redis_sub_options": {}},
            "cluster": {"nodes": [], "use_connection_manager": True},
            "nats": {"servers": ["nats://nats:4222"]},
            "cluster_health": {"enabled": True, "heartbeat_interval_ms": 10000},
            "kafka": {"brokers": []},
        },
        "app_manager": {
            "driver": "memory",
            "array": {"apps": [app_dict(secret="not-default", allowed_origins=["*"])]},
        },
        "database": {"redis": {"sentinels": [], "cluster_nodes": []}, "surrealdb": {}},
        "queue": {"driver": "memory", "redis": {"cluster_mode": False}, "reliability": {}},
        "metrics": {"driver": "prometheus", "tcp_exporter": {"enabled": False}},
        "http_api": {"accept_traffic": {"memory_threshold": 0.9}},
        "cleanup": {"async_enabled": True, "worker_threads": "auto"},
        "delta_compression": {"enabled": True},
        "history": {},
        "ai_transport": {},
        "push": {},
    }
    path = write_json(tmp_path, sockudo)
    with caplog.at_level(logging.DEBUG, logger="sockudo_py.config"):
        config = load_config(path, env={})
    assert config.host == "127.0.0.1"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any("delta_compression" in r.getMessage() for r in caplog.records)


def test_unknown_keys_inside_policy_and_webhooks() -> None:
    data = {
        "app_manager": {
            "array": {
                "apps": [
                    app_dict(
                        policy={"limits": {"max_conections": 1}, "history": {}},
                        webhooks=[{"uri": "x"}],
                    )
                ]
            }
        }
    }
    assert sorted(unknown_keys(data)) == [
        ("app_manager.array.apps.0.policy.history", True),
        ("app_manager.array.apps.0.policy.limits.max_conections", False),
        ("app_manager.array.apps.0.webhooks.0.uri", False),
    ]


def test_wrong_type_names_the_key_path_and_the_file(tmp_path: Path) -> None:
    path = write_json(
        tmp_path,
        {"app_manager": {"array": {"apps": [app_dict(max_connections="lots")]}}, "port": "x"},
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert "app_manager.array.apps.0.max_connections: Input should be a valid integer" in message
    assert f"(from file {path})" in message
    assert "port: Input should be a valid integer" in message
    assert len(info.value.problems) == 2
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("section", "allowed"),
    [
        ("adapter", "local, redis, redis-cluster, nats"),
        ("app_manager", "memory, mysql, dynamodb"),
        ("cache", "memory, redis, redis-cluster, none"),
        ("queue", "memory, redis, sqs, none"),
        ("rate_limiter", "memory, redis"),
    ],
)
def test_unknown_driver_names_key_and_allowed_values(
    tmp_path: Path, section: str, allowed: str
) -> None:
    path = write_json(tmp_path, {section: {"driver": "carrier-pigeon"}})
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert f"{section}.driver: unknown driver 'carrier-pigeon'; allowed: {allowed}" in str(
        info.value
    )


def test_unknown_driver_from_env_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"adapter\.driver: .*\(from env ADAPTER_DRIVER\)"):
        load_config(env={"ADAPTER_DRIVER": "kafka"})


@pytest.mark.parametrize(
    ("section", "given", "expected"),
    [
        ("app_manager", "array", "memory"),
        ("queue", "sync", "memory"),
        ("rate_limiter", "local", "memory"),
        ("adapter", "Redis_Cluster", "redis-cluster"),
    ],
)
def test_driver_spellings_are_normalised(section: str, given: str, expected: str) -> None:
    config = Config.model_validate({section: {"driver": given}})
    assert getattr(config, section).driver == expected


def test_cluster_health_intervals_are_checked() -> None:
    with pytest.raises(ConfigError, match="heartbeat_interval_ms") as info:
        load_config(env={"CLUSTER_HEALTH_HEARTBEAT_INTERVAL": "20000"})
    assert len(info.value.problems) == 1  # reported once, not for adapter.cluster_health too
    with pytest.raises(ValidationError, match="cleanup_interval_ms"):
        Config.model_validate({"cluster_health": {"cleanup_interval_ms": 40000}})


def test_nested_cluster_health_is_mirrored_to_the_top_level() -> None:
    config = Config.model_validate({"adapter": {"cluster_health": {"enabled": False}}})
    assert config.cluster_health.enabled is False
    assert config.adapter.cluster_health == config.cluster_health


def test_ssl_enabled_needs_paths() -> None:
    with pytest.raises(ConfigError, match="cert_path"):
        load_config(env={"SSL_ENABLED": "true"})


# --- warnings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_default_secret_on_public_host_is_warned_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sockudo_py.config"):
        load_config(env={"HOST": "0.0.0.0"})
    assert any("app-secret" in r.getMessage() for r in caplog.records)
    assert warnings_for(load_config(env={"HOST": "127.0.0.1"})) == []
    own = {
        "SOCKUDO_DEFAULT_APP_ID": "1",
        "SOCKUDO_DEFAULT_APP_KEY": "k",
        "SOCKUDO_DEFAULT_APP_SECRET": "x",
    }
    assert warnings_for(load_config(env=own)) == []


def test_sockudo_policy_nulls_mean_unset() -> None:
    app = App.model_validate(
        {
            "id": "1",
            "key": "k",
            "secret": "s",
            "max_connections": 7,
            "policy": {"limits": {"max_connections": None, "max_channel_name_length": None},
                       "features": {"enable_client_messages": True}},
        }
    )  # fmt: skip
    assert (app.max_connections, app.max_channel_name_length) == (7, 200)
    assert app.enable_client_messages is True
