"""The ``dynamodb`` app manager beyond the contract suite: Sockudo's item layouts, bad items,
table creation and checks, outages. Runs against the session moto server (tests/moto_server.py),
each test on its own table, with dummy credentials only."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import boto3
import pytest
from moto_server import MOTO_CREDENTIALS, MotoServer

from sockudo_py.app_manager import AppManagerUnavailable, create_app_manager
from sockudo_py.app_manager.dynamodb import DynamoDbAppManager
from sockudo_py.config import App, Config, DynamoDbConfig

pytestmark = pytest.mark.timeout(60)


def dynamo_config(endpoint: str, table: str) -> DynamoDbConfig:
    return DynamoDbConfig.model_validate(
        {**MOTO_CREDENTIALS, "endpoint_url": endpoint, "table_name": table}
    )


@pytest.fixture
def table() -> str:
    return f"apps-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def raw(moto_server: MotoServer) -> Any:
    """A plain boto3 DynamoDB client on the moto server (to write items as Sockudo would)."""
    return boto3.client(
        "dynamodb",
        endpoint_url=moto_server.url,
        region_name=MOTO_CREDENTIALS["region"],
        aws_access_key_id=MOTO_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=MOTO_CREDENTIALS["aws_secret_access_key"],
    )


Factory = Callable[..., Awaitable[DynamoDbAppManager]]


@pytest.fixture
async def manager_factory(moto_server: MotoServer, table: str) -> AsyncIterator[Factory]:
    """``await manager_factory(seed=[...])``: a started manager on this test's table."""
    started: list[DynamoDbAppManager] = []

    async def make(seed: list[App] | None = None, **overrides: Any) -> DynamoDbAppManager:
        manager = DynamoDbAppManager(dynamo_config(moto_server.url, table), seed or [])
        for name, value in overrides.items():
            setattr(manager, name, value)
        await manager.start(retry=False)
        started.append(manager)
        return manager

    yield make
    for manager in started:
        await manager.stop()


def app(app_id: str, **fields: Any) -> App:
    return App.model_validate({"id": app_id, "key": f"key-{app_id}", "secret": "s", **fields})


# --------------------------------------------------------------------------- table


async def test_creates_table_with_key_index(manager_factory: Factory, raw: Any, table: str) -> None:
    await manager_factory()
    described = raw.describe_table(TableName=table)["Table"]
    assert described["TableStatus"] == "ACTIVE"
    assert described["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    (index,) = described["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "KeyIndex"
    assert index["KeySchema"] == [{"AttributeName": "key", "KeyType": "HASH"}]
    assert index["Projection"]["ProjectionType"] == "ALL"
    await manager_factory()  # a second node finds the table there


async def test_table_without_key_index_is_a_config_error(
    manager_factory: Factory, raw: Any, table: str
) -> None:
    raw.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(RuntimeError, match="KeyIndex"):
        await manager_factory()


async def test_factory_builds_it(moto_server: MotoServer, table: str) -> None:
    config = Config.model_validate(
        {
            "app_manager": {"driver": "dynamodb", "array": {"apps": [app("f").model_dump()]}},
            "database": {"dynamodb": dynamo_config(moto_server.url, table).model_dump()},
        }
    )
    manager = create_app_manager(config)
    assert isinstance(manager, DynamoDbAppManager)
    await manager.start(retry=False)
    try:
        assert (found := await manager.find_by_key("key-f")) is not None and found.id == "f"
    finally:
        await manager.stop()


# --------------------------------------------------------------------------- item layout


async def test_written_item_is_sockudos_policy_layout(manager_factory: Factory, raw: Any) -> None:
    full = app(
        "w1",
        max_presence_member_size_in_kb=3.0,
        max_event_payload_in_kb=64.5,
        enable_client_messages=True,
        enable_subscription_count=True,
        allowed_origins=["https://a.example"],
        webhooks=[
            {
                "url": "https://h.example/x",
                "event_types": ["channel_occupied"],
                "filter": {"channel_name_starts_with": "private-"},
                "headers": {"lambda_": "kept as is"},
            },
            {"lambda": {"function_name": "fn", "region": "eu-west-1", "async": False}},
        ],
    )
    manager = await manager_factory([full])
    item = raw.get_item(TableName=manager.table, Key={"id": {"S": "w1"}})["Item"]
    assert set(item) == {"id", "key", "secret", "enabled", "policy"}
    assert item["key"] == {"S": "key-w1"} and item["enabled"] == {"BOOL": True}
    policy = json.loads(item["policy"]["S"])
    assert set(policy) == {"limits", "features", "channels", "webhooks"}
    assert policy["limits"]["max_presence_member_size_in_kb"] == 3  # an int: Sockudo's u32
    assert isinstance(policy["limits"]["max_presence_member_size_in_kb"], int)
    assert policy["limits"]["max_event_payload_in_kb"] == 64.5
    assert policy["features"]["enable_client_messages"] is True
    assert policy["features"]["enable_subscription_count"] is True
    assert policy["channels"] == {"allowed_origins": ["https://a.example"]}
    first, second = policy["webhooks"]
    assert first["filter"] == {"channel_prefix": "private-"}  # Sockudo's spelling, no nulls
    assert first["headers"] == {"lambda_": "kept as is"}
    assert second["lambda"] == {
        "function_name": "fn",
        "region": "eu-west-1",
        "async": False,
        "client_options": {},
    }
    found = await manager.find_by_id("w1")
    assert found is not None and found.model_dump() == full.model_dump()


# What Sockudo's DynamoDbAppManager writes (serde of its AppPolicy: unset options are null).
SOCKUDO_POLICY = {
    "limits": {
        "max_connections": 100,
        "max_backend_events_per_second": None,
        "max_client_events_per_second": 10,
        "max_read_requests_per_second": 50,
        "max_presence_members_per_channel": None,
        "max_presence_member_size_in_kb": None,
        "max_channel_name_length": 120,
        "max_event_channels_at_once": None,
        "max_event_name_length": None,
        "max_event_payload_in_kb": 32,
        "max_event_batch_size": None,
    },
    "features": {
        "enable_client_messages": True,
        "enable_user_authentication": None,
        "enable_watchlist_events": True,
    },
    "channels": {
        "allowed_origins": ["https://a.example", "*.b.example"],
        "channel_delta_compression": None,
        "channel_namespaces": None,
    },
    "webhooks": [
        {
            "url": "https://hooks.example/pusher",
            "event_types": ["channel_occupied", "member_added"],
            "filter": {
                "channel_prefix": "presence-",
                "channel_suffix": None,
                "channel_pattern": None,
                "channel_namespace": None,
                "channel_namespaces": None,
            },
            "retry": {
                "enabled": None,
                "max_attempts": 4,
                "max_elapsed_time_ms": None,
                "initial_backoff_ms": 250,
                "max_backoff_ms": None,
            },
        },
        {"lambda": {"function_name": "fn", "region": "eu-west-1"}, "event_types": []},
    ],
    "idempotency": None,
    "connection_recovery": None,
}

SOCKUDO_APP = {
    "max_connections": 100,
    "max_client_events_per_second": 10,
    "max_read_requests_per_second": 50,
    "max_channel_name_length": 120,
    "max_event_payload_in_kb": 32,
    "enable_client_messages": True,
    "enable_watchlist_events": True,
    "allowed_origins": ["https://a.example", "*.b.example"],
    "webhooks": [
        {
            "url": "https://hooks.example/pusher",
            "event_types": ["channel_occupied", "member_added"],
            "filter": {"channel_prefix": "presence-"},
            "retry": {"max_attempts": 4, "initial_backoff_ms": 250},
        },
        {"lambda": {"function_name": "fn", "region": "eu-west-1"}},
    ],
}
"""The same app, as our ``App`` fields."""


async def assert_reads(manager: DynamoDbAppManager, expected: App) -> None:
    by_id = await manager.find_by_id(expected.id)
    by_key = await manager.find_by_key(expected.key)
    listed = {a.id: a for a in await manager.all_apps()}.get(expected.id)
    for found in (by_id, by_key, listed):
        assert found is not None
        assert found.model_dump() == expected.model_dump()


async def test_sockudo_policy_item_reads(manager_factory: Factory, raw: Any) -> None:
    manager = await manager_factory()
    raw.put_item(
        TableName=manager.table,
        Item={
            "id": {"S": "sk-1"},
            "key": {"S": "sk-key-1"},
            "secret": {"S": "sk-secret"},
            "enabled": {"BOOL": False},
            "policy": {"S": json.dumps(SOCKUDO_POLICY)},
        },
    )
    expected = App.model_validate(
        {"id": "sk-1", "key": "sk-key-1", "secret": "sk-secret", "enabled": False, **SOCKUDO_APP}
    )
    await assert_reads(manager, expected)


async def test_sockudo_flat_item_reads(manager_factory: Factory, raw: Any) -> None:
    manager = await manager_factory()
    raw.put_item(
        TableName=manager.table,
        Item={
            "id": {"S": "sk-2"},
            "key": {"S": "sk-key-2"},
            "secret": {"S": "sk-secret"},
            # no "enabled": enabled
            "max_connections": {"N": "100"},
            "max_client_events_per_second": {"N": "10"},
            "max_read_requests_per_second": {"N": "50"},
            "max_channel_name_length": {"N": "120"},
            "max_event_payload_in_kb": {"N": "32"},
            "max_presence_member_size_in_kb": {"N": "1.5"},
            "max_backend_events_per_second": {"NULL": True},
            "enable_client_messages": {"BOOL": True},
            "enable_watchlist_events": {"BOOL": True},
            "allowed_origins": {"L": [{"S": "https://a.example"}, {"S": "*.b.example"}]},
            "webhooks": {"S": json.dumps(SOCKUDO_POLICY["webhooks"])},
            "channel_delta_compression": {"S": "{}"},
            "created_at": {"S": "2025-01-01T00:00:00Z"},
        },
    )
    expected = App.model_validate(
        {
            "id": "sk-2",
            "key": "sk-key-2",
            "secret": "sk-secret",
            **SOCKUDO_APP,
            "max_presence_member_size_in_kb": 1.5,
        }
    )
    await assert_reads(manager, expected)
    found = await manager.find_by_id("sk-2")
    assert found is not None and type(found.max_connections) is int  # no Decimal


async def test_policy_wins_over_flat_attributes(manager_factory: Factory, raw: Any) -> None:
    manager = await manager_factory()
    raw.put_item(
        TableName=manager.table,
        Item={
            "id": {"S": "sk-3"},
            "key": {"S": "sk-key-3"},
            "secret": {"S": "x"},
            "max_connections": {"N": "7"},
            "max_event_batch_size": {"N": "3"},
            "policy": {"S": json.dumps({"limits": {"max_connections": 9}})},
        },
    )
    found = await manager.find_by_id("sk-3")
    assert found is not None and found.max_connections == 9 and found.max_event_batch_size == 3


# --------------------------------------------------------------------------- bad items

BAD_ITEMS = [
    pytest.param({"key": {"S": "k"}}, "secret", id="no-secret"),
    pytest.param(
        {"key": {"S": "k"}, "secret": {"S": "s"}, "policy": {"S": "{nope"}},
        "policy",
        id="policy-not-json",
    ),
    pytest.param(
        {"key": {"S": "k"}, "secret": {"S": "s"}, "policy": {"S": "[1]"}},
        "policy",
        id="policy-not-object",
    ),
    pytest.param(
        {"key": {"S": "k"}, "secret": {"S": "s"}, "max_connections": {"S": "lots"}},
        "max_connections",
        id="bad-number",
    ),
    pytest.param(
        {"key": {"S": "k"}, "secret": {"S": "s"}, "webhooks": {"S": "[{"}},
        "webhooks",
        id="webhooks-not-json",
    ),
    pytest.param(
        {"key": {"S": "k"}, "secret": {"S": "s"}, "webhooks": {"S": '[{"url": 5}]'}},
        "webhooks",
        id="bad-webhook",
    ),
    pytest.param({"key": {"S": "k"}, "secret": {"B": b"\x00"}}, "secret", id="binary-secret"),
]


@pytest.mark.parametrize(("attributes", "problem"), BAD_ITEMS)
async def test_bad_item_is_logged_and_skipped(
    manager_factory: Factory,
    raw: Any,
    caplog: pytest.LogCaptureFixture,
    attributes: dict[str, Any],
    problem: str,
) -> None:
    good = app("good-1")
    manager = await manager_factory([good])
    bad_id = f"bad-{uuid.uuid4().hex[:6]}"
    raw.put_item(TableName=manager.table, Item={"id": {"S": bad_id}, **attributes})
    with caplog.at_level(logging.WARNING, logger="sockudo_py.app_manager"):
        assert await manager.find_by_id(bad_id) is None
        assert await manager.find_by_key("k") is None
        assert [a.id for a in await manager.all_apps()] == [good.id]
    messages = [r.getMessage() for r in caplog.records if bad_id in r.getMessage()]
    assert len(messages) == 3, caplog.text  # one per lookup, each naming the app
    assert all(problem in m for m in messages), messages
    assert await manager.find_by_id(good.id) is not None


async def test_key_shared_by_two_apps_is_refused(
    manager_factory: Factory, raw: Any, caplog: pytest.LogCaptureFixture
) -> None:
    manager = await manager_factory([app("dup-1", key="shared")])
    raw.put_item(
        TableName=manager.table,
        Item={"id": {"S": "dup-2"}, "key": {"S": "shared"}, "secret": {"S": "other"}},
    )
    with caplog.at_level(logging.ERROR, logger="sockudo_py.app_manager"):
        assert await manager.find_by_key("shared") is None
    assert "dup-1, dup-2" in caplog.text
    assert await manager.find_by_id("dup-2") is not None


# --------------------------------------------------------------------------- lookups


async def test_unstorable_values_are_misses(manager_factory: Factory) -> None:
    manager = await manager_factory([app("u-1")])
    for odd in ("", "x" * 2049, "é" * 1025, "lone\ud800surrogate"):
        assert await manager.find_by_id(odd) is None
        assert await manager.find_by_key(odd) is None
        assert await manager.remove(odd) is False
    assert await manager.find_by_id("y" * 2048) is None  # the longest storable: a plain miss


async def test_all_apps_reads_every_page(manager_factory: Factory) -> None:
    apps = [app(f"p-{n}") for n in range(7)]
    manager = await manager_factory(apps, SCAN_PAGE_SIZE=2)
    assert sorted(a.id for a in await manager.all_apps()) == sorted(a.id for a in apps)


async def test_remove_says_whether_it_existed(manager_factory: Factory) -> None:
    manager = await manager_factory([app("r-1")])
    assert await manager.remove("r-1") is True
    assert await manager.remove("r-1") is False
    assert await manager.find_by_key("key-r-1") is None


# --------------------------------------------------------------------------- outages


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_unreachable_endpoint_is_unavailable_quickly(closed_port: int) -> None:
    manager = DynamoDbAppManager(dynamo_config(f"http://127.0.0.1:{closed_port}", "t"), [])
    try:
        began = time.monotonic()
        with pytest.raises(AppManagerUnavailable):
            await manager.start(retry=False)
        assert time.monotonic() - began < 5
        for lookup in (manager.find_by_id("a"), manager.find_by_key("a"), manager.all_apps()):
            began = time.monotonic()
            with pytest.raises(AppManagerUnavailable):
                await lookup
            assert time.monotonic() - began < 5
    finally:
        await manager.stop()


@pytest.fixture
async def silent_endpoint() -> AsyncIterator[str]:
    """An endpoint that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_silent_endpoint_times_out(silent_endpoint: str) -> None:
    manager = DynamoDbAppManager(dynamo_config(silent_endpoint, "t"), [])
    manager.READ_TIMEOUT = 0.3
    manager.CALL_TIMEOUT = 2.0
    try:
        began = time.monotonic()
        with pytest.raises(AppManagerUnavailable):
            await manager.find_by_id("a")
        assert time.monotonic() - began < 3
    finally:
        await manager.stop()


async def test_deleted_table_is_unavailable(manager_factory: Factory, raw: Any) -> None:
    manager = await manager_factory([app("d-1")])
    raw.delete_table(TableName=manager.table)
    with pytest.raises(AppManagerUnavailable, match="does not exist"):
        await manager.find_by_id("d-1")
    await manager.connect()  # connecting again re-creates it
    assert await manager.find_by_id("d-1") is None


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def test_start_retries_until_the_store_answers(
    moto_server: MotoServer, table: str, closed_port: int
) -> None:
    """The store is down at start-up: ``start`` retries (the base class's back-off) and
    seeds the apps once it answers on the same endpoint."""
    manager = DynamoDbAppManager(
        dynamo_config(f"http://127.0.0.1:{closed_port}", table), [app("late")]
    )
    task = asyncio.create_task(manager.start())
    await asyncio.sleep(0.3)
    assert not task.done()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", moto_server.port)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    proxy = await asyncio.start_server(forward, "127.0.0.1", closed_port)  # the store is back
    try:
        await asyncio.wait_for(task, 15)
        assert (found := await manager.find_by_key("key-late")) is not None
        assert found.id == "late"
    finally:
        task.cancel()
        await manager.stop()
        proxy.close()
        await proxy.wait_closed()


# --------------------------------------------------------------------------- packaging


@pytest.fixture
def without_aioboto3(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    name = "sockudo_py.app_manager.dynamodb"
    saved = sys.modules.pop(name)
    monkeypatch.setitem(sys.modules, "aioboto3", None)
    try:
        yield
    finally:
        sys.modules[name] = saved


def test_missing_aioboto3_names_the_extra(without_aioboto3: None) -> None:
    with pytest.raises(ImportError, match=r"pip install 'sockudo-py\[aws\]'"):
        importlib.import_module("sockudo_py.app_manager.dynamodb")
