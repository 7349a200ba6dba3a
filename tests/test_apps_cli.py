"""``sockudo-py apps``: the real command, run as a process against each app store.

Stores: memory (the inline apps of config.json; changes cannot outlive the process), mysql
(MariaDB on 127.0.0.1:3306, root, database ``test``, a table per test) and dynamodb (the
session's ``moto_server``, a table per test). A missing service fails these tests, never skips.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
import redis

MYSQL = {"host": "127.0.0.1", "port": 3306, "username": "root", "password": "", "database": "test"}
REDIS_URL = "redis://127.0.0.1:6379/0"
MOTO_CREDENTIALS = {
    "region": "us-east-1",
    "aws_access_key_id": "test",
    "aws_secret_access_key": "test",
}
"""Dummy AWS credentials for the ``moto_server`` fixture (tests/moto_server.py, conftest.py)."""
SEED = {
    "id": "9000001",
    "key": "seed-key",
    "secret": "seed-secret-0123456789",
    "max_connections": 7,
}

MEMORY_WARNING = "app_manager.driver is memory: this change lives only in this process"


def run_apps(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sockudo_py", "apps", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": "/usr/bin:/bin"},
    )


def ok(config: Path, *args: str) -> str:
    result = run_apps(config, *args)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def ok_json(config: Path, *args: str) -> Any:
    return json.loads(ok(config, *args, "--json"))


def fails(config: Path, code: int, *args: str) -> str:
    """Runs a command that must fail with ``code`` and one line on stderr; that line."""
    result = run_apps(config, *args)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(path: Path, fragment: dict[str, Any]) -> Path:
    path.write_text(json.dumps(fragment))
    return path


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:10]


def mysql_fragment(table: str, port: int = 3306) -> dict[str, Any]:
    mysql = {**MYSQL, "port": port, "table_name": table}
    return {
        "app_manager": {"driver": "mysql", "array": {"apps": [SEED]}},
        "database": {"mysql": mysql},
    }


@pytest.fixture
def mysql_table(uid: str) -> Iterator[str]:
    """A unique table name in MariaDB's ``test`` database, dropped afterwards."""
    table = f"apps_cli_{uid}"
    yield table
    connection = pymysql.connect(
        host=MYSQL["host"], port=3306, user="root", password="", database="test"
    )
    with connection, connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS `{table}`")


@pytest.fixture(params=["mysql", "dynamodb"])
def store_config(request: pytest.FixtureRequest, tmp_path: Path, uid: str) -> Path:
    """A config.json selecting a database app manager with one inline app (``SEED``)."""
    if request.param == "mysql":
        fragment = mysql_fragment(request.getfixturevalue("mysql_table"))
    else:
        dynamodb = {
            **MOTO_CREDENTIALS,
            "endpoint_url": request.getfixturevalue("moto_server").url,
            "table_name": f"apps-cli-{uid}",
        }
        fragment = {
            "app_manager": {"driver": "dynamodb", "array": {"apps": [SEED]}},
            "database": {"dynamodb": dynamodb},
        }
    return write_config(tmp_path / "config.json", fragment)


@pytest.fixture
def memory_config(tmp_path: Path) -> Path:
    apps = [SEED, {"id": "9000002", "key": "other-key", "secret": "short", "enabled": False}]
    return write_config(
        tmp_path / "config.json", {"app_manager": {"driver": "memory", "array": {"apps": apps}}}
    )


# --- round trip through each database store --------------------------------------------------


def test_round_trip(store_config: Path) -> None:
    hooks = [{"url": "https://hooks.example.com/p", "event_types": ["channel_occupied"]}]
    added = ok_json(
        store_config,
        "add",
        "--max-connections",
        "50",
        "--enable-client-messages",
        "--allowed-origins",
        "https://a.example,https://b.example",
        "--webhooks",
        json.dumps(hooks),
        "--set",
        "max_client_events_per_second=20",
        "--set",
        "maxPresenceMembersPerChannel=30",
    )
    app_id, key, secret = added["id"], added["key"], added["secret"]
    assert added["enabled"] is True and added["max_connections"] == 50
    assert added["enable_client_messages"] is True
    assert added["allowed_origins"] == ["https://a.example", "https://b.example"]
    assert added["webhooks"][0]["url"] == hooks[0]["url"]
    assert added["max_client_events_per_second"] == 20
    assert added["max_presence_members_per_channel"] == 30

    assert ok_json(store_config, "show", app_id) == added
    table = ok(store_config, "show", app_id)
    assert re.search(r"^max_connections\s+50$", table, re.M)
    assert re.search(rf"^secret\s+{secret}$", table, re.M)

    listed = {app["id"]: app for app in ok_json(store_config, "list")}
    assert listed[app_id] == added
    assert listed[SEED["id"]]["key"] == SEED["key"]  # the inline app, upserted at start
    table = ok(store_config, "list")
    assert app_id in table and key in table and secret not in table
    assert "****" + secret[-4:] in table
    assert secret in ok(store_config, "list", "--show-secrets")

    assert "already exists" in fails(store_config, 1, "add", "--id", app_id)
    assert app_id in fails(store_config, 1, "add", "--key", key)

    updated = ok_json(store_config, "update", app_id, "--rotate-secret", "--disabled")
    assert updated["secret"] != secret and re.fullmatch(r"[0-9a-f]{32}", updated["secret"])
    assert updated["enabled"] is False
    assert {**updated, "secret": secret, "enabled": True} == added  # nothing else changed
    assert ok_json(store_config, "show", app_id) == updated

    ok(store_config, "update", app_id, "--secret", "chosen-secret", "--no-enable-client-messages")
    shown = ok_json(store_config, "show", app_id)
    assert shown["secret"] == "chosen-secret" and shown["enable_client_messages"] is False

    assert ok(store_config, "remove", app_id).strip() == f"removed app {app_id}"
    assert app_id in fails(store_config, 1, "show", app_id)
    assert app_id in fails(store_config, 1, "remove", app_id)
    assert app_id in fails(store_config, 1, "update", app_id, "--enabled")
    assert app_id not in {app["id"] for app in ok_json(store_config, "list")}


def test_update_key_refuses_a_key_of_another_app(store_config: Path, uid: str) -> None:
    ok(store_config, "add", "--id", f"{uid}-a", "--key", f"{uid}-ka")
    message = fails(store_config, 1, "update", f"{uid}-a", "--key", SEED["key"])
    assert SEED["key"] in message and SEED["id"] in message
    ok(store_config, "update", f"{uid}-a", "--key", f"{uid}-kb")
    assert ok_json(store_config, "show", f"{uid}-a")["key"] == f"{uid}-kb"


# --- memory ----------------------------------------------------------------------------------


def test_memory_lists_and_shows_the_config_apps(memory_config: Path) -> None:
    listed = ok_json(memory_config, "list")
    assert [app["id"] for app in listed] == ["9000001", "9000002"]
    assert listed[0]["secret"] == SEED["secret"] and listed[0]["max_connections"] == 7
    table = ok(memory_config, "list").splitlines()
    assert table[0].split()[:5] == ["ID", "KEY", "SECRET", "ENABLED", "MAX_CONNECTIONS"]
    assert table[1].split()[:5] == ["9000001", "seed-key", "****6789", "yes", "7"]
    assert table[2].split()[:5] == ["9000002", "other-key", "****", "no", "unlimited"]
    assert ok_json(memory_config, "show", "9000002")["enabled"] is False
    assert "9000404" in fails(memory_config, 1, "show", "9000404")
    # --config before the command works too, as for the server
    result = subprocess.run(
        [sys.executable, "-m", "sockudo_py", "--config", str(memory_config), "apps", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0 and "seed-key" in result.stdout


def test_memory_changes_warn_and_do_not_persist(memory_config: Path) -> None:
    for args in (["add", "--id", "9000003"], ["update", "9000001", "--disabled"]):
        result = run_apps(memory_config, *args)
        assert result.returncode == 0, result.stderr
        assert MEMORY_WARNING in result.stderr
    result = run_apps(memory_config, "remove", "9000002")
    assert result.returncode == 0 and MEMORY_WARNING in result.stderr
    listed = {app["id"]: app for app in ok_json(memory_config, "list")}
    assert set(listed) == {"9000001", "9000002"}  # a new process sees config.json again
    assert listed["9000001"]["enabled"] is True
    assert MEMORY_WARNING not in run_apps(memory_config, "list").stderr
    help_text = subprocess.run(
        [sys.executable, "-m", "sockudo_py", "apps", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    ).stdout
    assert "nothing persists" in " ".join(help_text.split())


# --- values ----------------------------------------------------------------------------------


def test_generated_credentials_have_pusher_shapes(memory_config: Path) -> None:
    first, second = ok_json(memory_config, "add"), ok_json(memory_config, "add")
    for app in (first, second):
        assert re.fullmatch(r"[1-9][0-9]{6}", app["id"]), app["id"]
        assert re.fullmatch(r"[0-9a-f]{20}", app["key"]), app["key"]
        assert re.fullmatch(r"[0-9a-f]{20,}", app["secret"]), app["secret"]
        assert app["enabled"] is True
    assert first["key"] != second["key"] and first["secret"] != second["secret"]


def test_duplicate_id_or_key_is_refused(memory_config: Path) -> None:
    assert "9000001" in fails(memory_config, 1, "add", "--id", "9000001")
    message = fails(memory_config, 1, "add", "--id", "9000009", "--key", "seed-key")
    assert "seed-key" in message and "9000001" in message


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["add", "--set", "max_connections=lots"], "max_connections"),
        (["add", "--max-connections", "lots"], "max_connections"),
        (["update", "9000001", "--set", "max_connections=lots"], "max_connections"),
        (["add", "--webhooks", "not json"], "webhooks"),
        (["add", "--set", 'message_rate_limit={"max_attempts": -1}'], "max_attempts"),
    ],
)
def test_bad_value_exits_2_naming_the_field(
    memory_config: Path, args: list[str], field: str
) -> None:
    assert field in fails(memory_config, 2, *args)


def test_usage_errors_exit_2(memory_config: Path) -> None:
    assert "not an app field" in fails(memory_config, 2, "add", "--set", "colour=blue")
    assert "FIELD=VALUE" in fails(memory_config, 2, "add", "--set", "max_connections")
    assert "nothing to change" in fails(memory_config, 2, "update", "9000001")
    fails(memory_config, 2, "frobnicate")


# --- failures and the cache ------------------------------------------------------------------


@pytest.mark.parametrize("store", ["mysql", "dynamodb"])
def test_store_down_fails_fast(tmp_path: Path, uid: str, store: str) -> None:
    if store == "mysql":
        fragment = mysql_fragment(f"apps_cli_{uid}", port=closed_port())
    else:
        dynamodb = {**MOTO_CREDENTIALS, "endpoint_url": f"http://127.0.0.1:{closed_port()}"}
        fragment = {"app_manager": {"driver": "dynamodb"}, "database": {"dynamodb": dynamodb}}
    config = write_config(tmp_path / "config.json", fragment)
    for args in (["list"], ["add"]):
        started = time.monotonic()
        message = fails(config, 1, *args)
        assert time.monotonic() - started < 10
        assert f"cannot reach the {store} app store" in message


def test_update_clears_the_redis_cache_entries(store_config: Path, uid: str) -> None:
    prefix = f"apps-cli-{uid}:"
    fragment = json.loads(store_config.read_text())
    fragment["app_manager"]["cache"] = {"enabled": True, "ttl": 300}
    fragment["cache"] = {"driver": "redis", "redis": {"prefix": prefix}}
    fragment["database"]["redis"] = {"url": REDIS_URL}
    config = write_config(store_config, fragment)
    app = ok_json(config, "add")
    app_id, key = app["id"], app["key"]
    client = redis.Redis.from_url(REDIS_URL)
    try:
        entries = [f"{prefix}app:id:{app_id}", f"{prefix}app:key:{key}"]
        for entry in entries:
            client.set(entry, json.dumps(app), ex=300)  # what a node cached before the change
        ok(config, "update", app_id, "--disabled")
        assert client.exists(*entries) == 0
        assert ok_json(config, "show", app_id)["enabled"] is False

        # a new key clears the entry of the old key too, and remove clears them all
        client.set(entries[1], json.dumps(app), ex=300)
        ok(config, "update", app_id, "--key", f"{uid}-new-key")
        assert client.exists(entries[1]) == 0
        entries = [entries[0], f"{prefix}app:key:{uid}-new-key"]
        for entry in entries:
            client.set(entry, json.dumps(app), ex=300)
        ok(config, "remove", app_id)
        assert client.exists(*entries) == 0
    finally:
        for entry in client.scan_iter(f"{prefix}*"):
            client.delete(entry)
        client.close()
