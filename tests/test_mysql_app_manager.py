"""The ``mysql`` app manager beyond the contract suite: Sockudo- and soketi-written rows, bad
rows, exact lookups whatever the table's collation, and a store that is down, silent or back.
Runs against the MariaDB of tests/mysql_store.py; unreachable is a failure, never a skip."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from mysql_store import MYSQL, drop, execute, mysql_fragment, session_table, soketi_ddl

from sockudo_py.app_manager import AppManagerUnavailable, create_app_manager
from sockudo_py.app_manager.mysql import SOCKUDO_SCHEMA, MySqlAppManager
from sockudo_py.config import App, Config, SqlConnection

# Sockudo's own DDL (ops/migrations/mysql/001_fresh_schema.sql), as Sockudo creates it.
SOCKUDO_FRESH_DDL = """CREATE TABLE `{table}` (
    id VARCHAR(255) PRIMARY KEY,
    `key` VARCHAR(255) UNIQUE NOT NULL,
    secret VARCHAR(255) NOT NULL,
    max_connections INT UNSIGNED NOT NULL,
    enable_client_messages BOOLEAN NOT NULL DEFAULT FALSE,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    max_backend_events_per_second INT UNSIGNED NULL,
    max_client_events_per_second INT UNSIGNED NOT NULL,
    max_read_requests_per_second INT UNSIGNED NULL,
    max_presence_members_per_channel INT UNSIGNED NULL,
    max_presence_member_size_in_kb INT UNSIGNED NULL,
    max_channel_name_length INT UNSIGNED NULL,
    max_event_channels_at_once INT UNSIGNED NULL,
    max_event_name_length INT UNSIGNED NULL,
    max_event_payload_in_kb INT UNSIGNED NULL,
    max_event_batch_size INT UNSIGNED NULL,
    enable_user_authentication BOOLEAN NULL,
    enable_watchlist_events BOOLEAN NULL,
    policy JSON NULL,
    webhooks JSON NULL,
    allowed_origins JSON NULL,
    channel_delta_compression JSON NULL,
    idempotency JSON NULL,
    connection_recovery JSON NULL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"""

# An older Sockudo's table: no policy, allowed_origins, enable_watchlist_events.
SOCKUDO_OLD_DDL = """CREATE TABLE `{table}` (
    id VARCHAR(255) PRIMARY KEY,
    `key` VARCHAR(255) UNIQUE NOT NULL,
    secret VARCHAR(255) NOT NULL,
    max_connections INT UNSIGNED NOT NULL,
    enable_client_messages BOOLEAN NOT NULL DEFAULT FALSE,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    max_backend_events_per_second INT UNSIGNED NULL,
    max_client_events_per_second INT UNSIGNED NOT NULL,
    max_read_requests_per_second INT UNSIGNED NULL,
    max_presence_members_per_channel INT UNSIGNED NULL,
    max_presence_member_size_in_kb INT UNSIGNED NULL,
    max_channel_name_length INT UNSIGNED NULL,
    max_event_channels_at_once INT UNSIGNED NULL,
    max_event_name_length INT UNSIGNED NULL,
    max_event_payload_in_kb INT UNSIGNED NULL,
    max_event_batch_size INT UNSIGNED NULL,
    enable_user_authentication BOOLEAN NULL,
    webhooks JSON NULL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"""

SOKETI_UNSTORED = frozenset(
    {
        "enable_watchlist_events",
        "enable_subscription_count",
        "decay_seconds",
        "terminate_on_limit",
        "message_rate_limit",
        "allowed_origins",
    }
)
SOKETI_LIMITS = frozenset(
    {
        "max_presence_members_per_channel",
        "max_presence_member_size_in_kb",
        "max_channel_name_length",
        "max_event_channels_at_once",
        "max_event_name_length",
        "max_event_payload_in_kb",
        "max_event_batch_size",
        "enable_user_authentication",
    }
)


def rich_app(app_id: str, **fields: Any) -> App:
    return App.model_validate(
        {
            "id": app_id,
            "key": f"key-{app_id}",
            "secret": "s3cr3t",
            "max_connections": 12,
            "enable_client_messages": True,
            "enable_subscription_count": True,
            "decay_seconds": 4,
            "terminate_on_limit": True,
            "message_rate_limit": {"enabled": True, "max_attempts": 9},
            "max_backend_events_per_second": 40,
            "max_presence_member_size_in_kb": 1.5,
            "max_event_payload_in_kb": 100,
            "allowed_origins": ["https://a.example"],
            "webhooks": [
                {
                    "url": "https://hooks.example/x",
                    "event_types": ["channel_occupied"],
                    "filter": {"channel_name_starts_with": "private-"},
                },
                {"lambda": {"function_name": "fn", "async": False}, "event_types": ["x"]},
            ],
            **fields,
        }
    )


Managers = Callable[..., Awaitable[MySqlAppManager]]


@pytest.fixture
def table(mysql_tables: None) -> Iterator[str]:
    """A fresh table name (nothing created), dropped after the test."""
    name = session_table("apps_test")
    yield name
    drop(name)


@pytest.fixture
async def managers() -> AsyncIterator[Managers]:
    """``await managers(table, layout="sockudo", seed=(), start=True, **connection)``."""
    made: list[MySqlAppManager] = []

    async def make(
        table: str,
        layout: str = "sockudo",
        seed: tuple[App, ...] = (),
        start: bool = True,
        **connection: Any,
    ) -> MySqlAppManager:
        manager = MySqlAppManager(
            SqlConnection(**mysql_fragment(table, layout, **connection)), seed
        )
        made.append(manager)
        if start:
            await manager.start(retry=False)
        return manager

    yield make
    for manager in made:
        await manager.stop()


def insert(table: str, **row: Any) -> None:
    columns = ", ".join(f"`{c}`" for c in row)
    holders = ", ".join(["%s"] * len(row))
    values = [json.dumps(v) if isinstance(v, dict | list) else v for v in row.values()]
    execute(f"INSERT INTO `{table}` ({columns}) VALUES ({holders})", values)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- Sockudo's layout --------------------------------------------------------------------------


async def test_table_is_created_with_sockudos_columns(table: str, managers: Managers) -> None:
    manager = await managers(table)
    rows = execute(
        "SELECT COLUMN_NAME AS name, COLLATION_NAME AS coll FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        (table,),
    )
    assert [r["name"] for r in rows] == [name for name, _ in SOCKUDO_SCHEMA]
    collations = {r["name"]: r["coll"] for r in rows}
    assert collations["id"] == collations["key"] == "utf8mb4_bin"  # ids and keys are exact
    assert manager.unstored_fields == frozenset()
    await manager.connect()  # again: the table is there, nothing changes


async def test_rows_are_written_the_way_sockudo_reads_them(table: str, managers: Managers) -> None:
    app = rich_app("w1")
    manager = await managers(table, seed=(app,))
    (row,) = execute(f"SELECT * FROM `{table}` WHERE id = 'w1'")
    assert row["max_connections"] == 12 and row["enable_client_messages"] == 1
    assert row["max_presence_member_size_in_kb"] == 2  # Sockudo's column is whole KB
    assert (
        row["max_backend_events_per_second"] == 40 and row["max_read_requests_per_second"] is None
    )
    assert json.loads(row["allowed_origins"]) == ["https://a.example"]
    hooks = json.loads(row["webhooks"])
    assert hooks[0]["filter"] == {"channel_prefix": "private-"}  # Sockudo's spelling
    assert hooks[1]["lambda"] == {
        "function_name": "fn",
        "region": "us-east-1",
        "async": False,
        "client_options": {},
    }
    policy = json.loads(row["policy"])
    assert set(policy) == {"limits", "features", "channels", "webhooks"}
    assert policy["limits"]["max_presence_member_size_in_kb"] == 1.5
    assert policy["limits"]["max_event_payload_in_kb"] == 100
    assert isinstance(policy["limits"]["max_event_payload_in_kb"], int)  # not 100.0
    assert policy["limits"]["decay_seconds"] == 4 and policy["limits"]["terminate_on_limit"]
    assert policy["limits"]["message_rate_limit"]["max_attempts"] == 9
    assert "max_read_requests_per_second" not in policy["limits"]  # None: left out
    assert policy["features"] == {
        "enable_client_messages": True,
        "enable_user_authentication": False,
        "enable_watchlist_events": False,
        "enable_subscription_count": True,
    }
    assert policy["channels"] == {"allowed_origins": ["https://a.example"]}
    assert policy["webhooks"] == hooks
    found = await manager.find_by_id("w1")
    assert found is not None and found.model_dump() == app.model_dump()


async def test_sockudo_written_rows_read_as_sockudo_meant_them(
    table: str, managers: Managers
) -> None:
    execute(SOCKUDO_FRESH_DDL.format(table=table))
    # Sockudo's fresh-schema seed row
    insert(
        table,
        id="app-id",
        key="app-key",
        secret="app-secret",
        max_connections=100000,
        enable_client_messages=True,
        enabled=True,
        max_client_events_per_second=1000,
    )
    # a flat row (Sockudo before the policy column): NULL limits mean "not set"
    insert(
        table,
        id="flat",
        key="flat-key",
        secret="s",
        max_connections=0,
        enabled=False,
        max_client_events_per_second=0,
        max_backend_events_per_second=None,
        max_event_batch_size=20,
        enable_user_authentication=None,
        enable_watchlist_events=True,
        allowed_origins=["https://x.example", "*.y.example"],
        webhooks=[
            {
                "url": "https://h.example",
                "event_types": ["member_added"],
                "filter": {"channel_prefix": "presence-", "channel_suffix": "-x"},
            }
        ],
        channel_delta_compression={"chat": {"enabled": True}},
    )
    # a v5 row with a nested policy: policy values win, its nulls are "not set"
    insert(
        table,
        id="nested",
        key="nested-key",
        secret="s2",
        max_connections=5,
        enable_client_messages=False,
        enabled=True,
        max_client_events_per_second=3,
        max_event_payload_in_kb=10,
        policy={
            "limits": {
                "max_connections": 50,
                "max_client_events_per_second": 30,
                "decay_seconds": 2,
                "max_presence_members_per_channel": None,
                "message_rate_limit": {
                    "enabled": True,
                    "max_attempts": 5,
                    "decay_seconds": 1,
                    "terminate_on_limit": True,
                },
            },
            "features": {"enable_client_messages": True, "enable_user_authentication": True},
            "channels": {
                "allowed_origins": ["https://p.example"],
                "channel_namespaces": [{"name": "chat"}],
            },
            "webhooks": [{"url": "https://p.example/hook", "event_types": ["client_event"]}],
            "idempotency": {"enabled": False},
        },
        idempotency={"enabled": False},
    )
    manager = await managers(table)
    assert manager.unstored_fields == frozenset()

    seeded = await manager.find_by_key("app-key")
    assert (
        seeded is not None
        and seeded.model_dump()
        == App(
            id="app-id",
            key="app-key",
            secret="app-secret",
            max_connections=100000,
            enable_client_messages=True,
            max_client_events_per_second=1000,
        ).model_dump()
    )

    flat = await manager.find_by_id("flat")
    assert flat is not None
    assert (flat.enabled, flat.max_connections, flat.max_event_batch_size) == (False, 0, 20)
    assert flat.max_backend_events_per_second is None and not flat.enable_user_authentication
    assert flat.enable_watchlist_events and flat.max_presence_members_per_channel == 100
    assert flat.allowed_origins == ["https://x.example", "*.y.example"]
    (hook,) = flat.webhooks
    assert hook.url == "https://h.example" and hook.filter is not None
    assert (hook.filter.channel_name_starts_with, hook.filter.channel_name_ends_with) == (
        "presence-",
        "-x",
    )

    nested = await manager.find_by_id("nested")
    assert nested is not None
    assert (nested.max_connections, nested.max_client_events_per_second) == (50, 30)
    assert nested.max_event_payload_in_kb == 10  # flat column, not in the policy
    assert nested.decay_seconds == 2 and nested.max_presence_members_per_channel == 100
    assert nested.enable_client_messages and nested.enable_user_authentication
    assert nested.message_rate_limit is not None and nested.message_rate_limit.max_attempts == 5
    assert nested.allowed_origins == ["https://p.example"]
    assert [w.url for w in nested.webhooks] == ["https://p.example/hook"]
    assert {a.id for a in await manager.all_apps()} == {"app-id", "flat", "nested"}

    # written back through us, Sockudo's own columns are left as they were
    await manager.upsert(nested.model_copy(update={"max_connections": 51}))
    (row,) = execute(f"SELECT idempotency, created_at FROM `{table}` WHERE id = 'nested'")
    assert json.loads(row["idempotency"]) == {"enabled": False}
    again = await manager.find_by_id("nested")
    assert (
        again is not None
        and again.model_dump() == nested.model_copy(update={"max_connections": 51}).model_dump()
    )


async def test_an_older_sockudo_table_gets_the_missing_columns(
    table: str, managers: Managers
) -> None:
    execute(SOCKUDO_OLD_DDL.format(table=table))
    insert(
        table,
        id="old",
        key="old-key",
        secret="s",
        max_connections=3,
        max_client_events_per_second=0,
        webhooks=[],
    )
    manager = await managers(table, seed=(rich_app("new"),))
    assert manager.unstored_fields == frozenset()
    columns = {
        r["name"]
        for r in execute(
            "SELECT COLUMN_NAME AS name FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (table,),
        )
    }
    assert {"policy", "allowed_origins", "enable_watchlist_events"} <= columns
    old = await manager.find_by_id("old")
    assert old is not None and old.max_connections == 3
    new = await manager.find_by_id("new")
    assert new is not None and new.model_dump() == rich_app("new").model_dump()


async def test_bad_rows_are_logged_and_skipped(
    table: str, managers: Managers, caplog: pytest.LogCaptureFixture
) -> None:
    manager = await managers(table, seed=(rich_app("good"),))
    base = {"secret": "s", "max_connections": 0, "max_client_events_per_second": 0}
    insert(table, id="bad-hooks", key="k1", webhooks={"url": 5}, **base)
    insert(table, id="bad-policy", key="k2", policy={"limits": {"max_connections": "lots"}}, **base)
    insert(table, id="bad-shape", key="k3", policy=[1, 2], **base)
    insert(table, id="bad-origins", key="k4", allowed_origins={"not": "a list"}, **base)
    bad = ["bad-hooks", "bad-policy", "bad-shape", "bad-origins"]
    with caplog.at_level(logging.WARNING, logger="sockudo_py.app_manager"):
        assert [a.id for a in await manager.all_apps()] == ["good"]
        for app_id, key in zip(bad, ["k1", "k2", "k3", "k4"], strict=True):
            assert await manager.find_by_id(app_id) is None
            assert await manager.find_by_key(key) is None
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    for app_id in bad:
        assert repr(app_id) in warned
    assert await manager.find_by_key("key-good") is not None


async def test_bad_soketi_rows_are_logged_and_skipped(
    table: str, managers: Managers, caplog: pytest.LogCaptureFixture
) -> None:
    # a hand-made soketi table: nullable key, webhooks as plain text
    ddl = soketi_ddl(table).replace("`key` varchar(255) NOT NULL", "`key` varchar(255) NULL")
    execute(ddl.replace("`webhooks` json", "`webhooks` text"))
    row = {
        "secret": "s",
        "max_connections": -1,
        "enabled": 1,
        "enable_client_messages": 0,
        "max_backend_events_per_sec": -1,
        "max_client_events_per_sec": -1,
        "max_read_req_per_sec": -1,
    }
    insert(table, id="no-key", key=None, webhooks="[]", **row)
    insert(table, id="bad-json", key="bad-json-key", webhooks="[{oops", **row)
    insert(table, id="fine", key="fine-key", webhooks="", **row)
    manager = await managers(table, "soketi")
    with caplog.at_level(logging.WARNING, logger="sockudo_py.app_manager"):
        assert [a.id for a in await manager.all_apps()] == ["fine"]
        assert await manager.find_by_id("no-key") is None
        assert await manager.find_by_id("bad-json") is None
        assert await manager.find_by_key("bad-json-key") is None
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "'no-key'" in warned and "'bad-json'" in warned
    fine = await manager.find_by_key("fine-key")
    assert fine is not None and fine.webhooks == [] and fine.max_connections == 0


# --- exactness ---------------------------------------------------------------------------------


async def test_lookups_are_exact_in_a_case_insensitive_table(
    table: str, managers: Managers
) -> None:
    execute(SOCKUDO_FRESH_DDL.format(table=table))  # Sockudo's utf8mb4_unicode_ci
    manager = await managers(table, seed=(App(id="App-1", key="Key-X", secret="s"),))
    assert await manager.find_by_key("Key-X") is not None
    for near in ("key-x", "KEY-X", "Key-X ", "Key-\u0425"):  # the last one is Cyrillic
        assert await manager.find_by_key(near) is None
    for near in ("app-1", "App-1 "):
        assert await manager.find_by_id(near) is None
        assert await manager.remove(near) is False
    assert await manager.find_by_id("App-1") is not None
    with pytest.raises(ValueError, match="collation"):  # the table cannot tell them apart
        await manager.upsert(App(id="app-1", key="other", secret="s"))
    with pytest.raises(ValueError, match="App-1"):
        await manager.upsert(App(id="other", key="key-x", secret="s"))
    found = await manager.find_by_id("App-1")
    assert found is not None and found.key == "Key-X"


async def test_a_key_of_another_app_is_refused(table: str, managers: Managers) -> None:
    a = App(id="a", key="shared", secret="sa")
    manager = await managers(table, seed=(a,))
    with pytest.raises(ValueError, match="belongs to app 'a'"):
        await manager.upsert(App(id="b", key="shared", secret="sb"))
    assert await manager.find_by_id("b") is None
    found = await manager.find_by_key("shared")
    assert found is not None and found.model_dump() == a.model_dump()


async def test_a_value_the_charset_cannot_hold_finds_nothing(
    table: str, managers: Managers
) -> None:
    execute(soketi_ddl(table, charset="utf8mb3"))  # no 4-byte characters
    manager = await managers(table, "soketi", seed=(App(id="plain", key="k", secret="s"),))
    assert await manager.find_by_key("ключ🙂") is None
    assert await manager.find_by_id("🙂") is None
    assert await manager.remove("🙂") is False
    with pytest.raises(ValueError, match="cannot be stored"):
        await manager.upsert(App(id="emoji", key="🙂", secret="s"))
    assert [a.id for a in await manager.all_apps()] == ["plain"]


# --- soketi's layout ---------------------------------------------------------------------------


async def test_soketi_rows_read_and_write_as_soketi(table: str, managers: Managers) -> None:
    execute(soketi_ddl(table))
    # soketi's fixture row (tests/fixtures/mysql_schema.sql)
    insert(
        table,
        id="app-id",
        key="app-key",
        secret="app-secret",
        max_connections=200,
        enabled=1,
        enable_client_messages=1,
        max_backend_events_per_sec=-1,
        max_client_events_per_sec=-1,
        max_read_req_per_sec=-1,
        webhooks="[]",
    )
    manager = await managers(table, "soketi")
    assert manager.unstored_fields == SOKETI_UNSTORED
    found = await manager.find_by_key("app-key")
    assert (
        found is not None
        and found.model_dump()
        == App(
            id="app-id",
            key="app-key",
            secret="app-secret",
            max_connections=200,
            enable_client_messages=True,
        ).model_dump()
    )

    await manager.upsert(rich_app("s1", max_connections=0, max_event_name_length=150))
    (row,) = execute(f"SELECT * FROM `{table}` WHERE id = 's1'")
    assert (row["max_connections"], row["max_client_events_per_sec"]) == (-1, -1)  # unlimited
    assert (row["max_backend_events_per_sec"], row["max_read_req_per_sec"]) == (40, -1)
    assert row["max_presence_member_size_in_kb"] == 1.5 and row["max_event_name_length"] == 150
    hooks = json.loads(row["webhooks"])
    assert hooks[0]["filter"] == {"channel_name_starts_with": "private-"}  # soketi's spelling
    assert hooks[1]["lambda"]["async"] is False
    assert set(row) == {
        "id",
        "key",
        "secret",
        "max_connections",
        "enabled",
        "enable_client_messages",
        "max_backend_events_per_sec",
        "max_client_events_per_sec",
        "max_read_req_per_sec",
        "webhooks",
        *sorted(SOKETI_LIMITS),
    }  # no column added
    back = await manager.find_by_id("s1")
    expected = rich_app("s1", max_connections=0, max_event_name_length=150)
    assert back is not None
    assert (
        back.model_dump()
        == expected.model_copy(
            update={
                "enable_subscription_count": False,
                "decay_seconds": 1,
                "terminate_on_limit": False,
                "message_rate_limit": None,
                "allowed_origins": [],
            }
        ).model_dump()
    )


async def test_a_pre_029_soketi_table_stores_what_it_has(table: str, managers: Managers) -> None:
    execute(soketi_ddl(table, limits=False))
    manager = await managers(table, "soketi", seed=(rich_app("s2"),))
    assert manager.unstored_fields == SOKETI_UNSTORED | SOKETI_LIMITS
    found = await manager.find_by_id("s2")
    assert found is not None and found.max_presence_member_size_in_kb == 2  # the default
    assert found.max_connections == 12 and len(found.webhooks) == 2


async def test_soketis_table_is_never_created(table: str, managers: Managers) -> None:
    manager = await managers(table, "soketi", start=False)
    with pytest.raises(AppManagerUnavailable, match="does not create it"):
        await manager.connect()
    assert execute("SHOW TABLES LIKE %s", (table,)) == []


async def test_a_value_soketis_columns_cannot_hold_is_refused(
    table: str, managers: Managers
) -> None:
    # soketi's 0.29 upgrade notes declare the limits tinyint(1): at most 127
    execute(
        soketi_ddl(table).replace(
            "`max_channel_name_length` integer(10)", "`max_channel_name_length` tinyint(1)"
        )
    )
    manager = await managers(table, "soketi")
    with pytest.raises(ValueError, match="max_channel_name_length"):
        await manager.upsert(App(id="big", key="big", secret="s", max_channel_name_length=200))
    assert await manager.find_by_id("big") is None


# --- the store away ----------------------------------------------------------------------------


class Proxy:
    """A TCP proxy to MariaDB whose ``mode`` is ``up`` (forwards), ``down`` (closes every
    connection at once) or ``frozen`` (accepts and forwards nothing)."""

    def __init__(self) -> None:
        self.mode = "up"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._thawed = asyncio.Event()
        self._thawed.set()
        self._writers: list[asyncio.StreamWriter] = []

    def set(self, mode: str) -> None:
        self.mode = mode
        if mode == "frozen":
            self._thawed.clear()
        else:
            self._thawed.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._thawed.set()
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        if self.mode == "down":
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(MYSQL["host"], MYSQL["port"])
        self._writers.append(up_writer)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    await self._thawed.wait()
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    running = Proxy()
    await running.start()
    yield running
    await running.stop()


async def test_a_closed_port_is_unavailable_quickly(table: str, managers: Managers) -> None:
    manager = await managers(table, start=False, port=free_port())
    began = time.monotonic()
    with pytest.raises(AppManagerUnavailable, match="cannot connect"):
        await manager.start(retry=False)
    assert time.monotonic() - began < 5
    with pytest.raises(AppManagerUnavailable, match="not connected"):
        await manager.find_by_id("x")


async def test_a_silent_store_is_unavailable_within_bounds(
    table: str, managers: Managers, proxy: Proxy
) -> None:
    proxy.set("frozen")  # accepts, never sends the handshake
    manager = await managers(table, start=False, port=proxy.port)
    manager.connect_timeout = 2.0
    began = time.monotonic()
    with pytest.raises(AppManagerUnavailable):
        await manager.connect()
    assert time.monotonic() - began < 5

    proxy.set("up")
    manager.query_timeout = 1.0
    await manager.start(retry=False)
    await manager.upsert(App(id="q", key="q", secret="s"))
    proxy.set("frozen")  # a store that stops answering mid-session
    began = time.monotonic()
    with pytest.raises(AppManagerUnavailable, match="no answer within 1s"):
        await manager.find_by_id("q")
    with pytest.raises(AppManagerUnavailable):
        await manager.all_apps()
    assert time.monotonic() - began < 4
    proxy.set("up")  # and back: the stuck connections were dropped, fresh ones work
    assert await manager.find_by_id("q") is not None


async def test_start_waits_for_a_store_that_comes_up(
    table: str, managers: Managers, proxy: Proxy
) -> None:
    proxy.set("down")
    seed = App(id="late", key="late-key", secret="s")
    manager = await managers(table, seed=(seed,), start=False, port=proxy.port)
    starting = asyncio.create_task(manager.start())
    await asyncio.sleep(1.2)  # a few failed tries (0.5 s, then 1 s back-off)
    assert not starting.done()
    proxy.set("up")
    await asyncio.wait_for(starting, 10)
    found = await manager.find_by_key("late-key")
    assert found is not None and found.model_dump() == seed.model_dump()


async def test_a_stale_pooled_connection_is_replaced(
    table: str, managers: Managers, proxy: Proxy
) -> None:
    manager = await managers(
        table, seed=(App(id="st", key="st", secret="s"),), port=proxy.port, pool_min=1, pool_max=1
    )
    for writer in list(proxy._writers):  # the server side of the pooled connection goes away
        writer.close()
    await asyncio.sleep(0.1)
    assert await manager.find_by_id("st") is not None


# --- wiring ------------------------------------------------------------------------------------


async def test_pool_sizes_follow_the_config(table: str, managers: Managers) -> None:
    sized = await managers(table, pool_min=2, pool_max=4)
    assert (sized._pool.minsize, sized._pool.maxsize) == (2, 4)
    legacy = await managers(table, connection_pool_size=3)
    assert (legacy._pool.minsize, legacy._pool.maxsize) == (1, 3)


def test_the_factory_builds_it_from_the_config() -> None:
    config = Config.model_validate(
        {
            "app_manager": {"driver": "mysql"},
            "database": {"mysql": {**MYSQL, "table_name": "apps", "table_layout": "soketi"}},
        }
    )
    manager = create_app_manager(config)
    assert isinstance(manager, MySqlAppManager)
    # before connect only the layout is known: every soketi column is assumed present
    assert manager.layout == "soketi" and manager.unstored_fields == SOKETI_UNSTORED


def test_a_missing_aiomysql_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiomysql", None)
    monkeypatch.delitem(sys.modules, "sockudo_py.app_manager.mysql")
    with pytest.raises(ImportError, match=r"pip install 'sockudo-py\[mysql\]'"):
        importlib.import_module("sockudo_py.app_manager.mysql")
