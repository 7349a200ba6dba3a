"""The MariaDB / MySQL the tests use (127.0.0.1:3306, user root, empty password, database
``test``; ``make test`` starts it), its per-session table names and soketi's table.

* :data:`MYSQL` is the ``database.mysql`` connection fragment (without ``table_name``).
* :data:`CONTRACT_TABLE` (Sockudo layout, created by the driver) and :data:`SOKETI_TABLE`
  (soketi layout, created here) are unique to this session; the session fixture
  ``mysql_tables`` (registered in ``tests/conftest.py``) creates soketi's table and drops
  both, plus every table named through :func:`session_table`, at the end.
* :func:`resolve_mysql` starts that fixture when a config fragment names ``database.mysql``.
* :func:`soketi_ddl` is soketi's ``apps`` table: the columns of soketi's MySQL docs and
  fixtures (``tests/fixtures/mysql_schema.sql``; the per-app limit columns of soketi 0.29 and
  ``enable_user_authentication`` of 1.0). soketi's 0.29 notes declare the limit columns
  ``tinyint(1)`` (at most 127), which cannot hold soketi's own defaults (200): here they are
  ``INT``, and the two ``*_in_kb`` columns ``DOUBLE`` (soketi reads them with ``parseFloat``).

MariaDB unreachable is a failure naming the fix, never a skip.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

MYSQL: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 3306,
    "username": "root",
    "password": "",
    "database": "test",
}
SESSION_TAG = uuid.uuid4().hex[:8]
CONTRACT_TABLE = f"apps_contract_{SESSION_TAG}"
SOKETI_TABLE = f"apps_soketi_{SESSION_TAG}"
_TABLES: set[str] = {CONTRACT_TABLE, SOKETI_TABLE}

SOKETI_BASE_COLUMNS = """
    `id` varchar(255) NOT NULL,
    `key` varchar(255) NOT NULL,
    `secret` varchar(255) NOT NULL,
    `max_connections` integer(10) NOT NULL,
    `enabled` tinyint(1) NOT NULL,
    `enable_client_messages` tinyint(1) NOT NULL,
    `max_backend_events_per_sec` integer(10) NOT NULL,
    `max_client_events_per_sec` integer(10) NOT NULL,
    `max_read_req_per_sec` integer(10) NOT NULL,
    `webhooks` json"""
SOKETI_LIMIT_COLUMNS = """,
    `max_presence_members_per_channel` integer(10) NULL,
    `max_presence_member_size_in_kb` double NULL,
    `max_channel_name_length` integer(10) NULL,
    `max_event_channels_at_once` integer(10) NULL,
    `max_event_name_length` integer(10) NULL,
    `max_event_payload_in_kb` double NULL,
    `max_event_batch_size` integer(10) NULL,
    `enable_user_authentication` tinyint(1) NULL"""


def soketi_ddl(table: str, limits: bool = True, charset: str = "utf8mb4") -> str:
    """soketi's ``apps`` table named ``table``; ``limits=False`` is a pre-0.29 one."""
    columns = SOKETI_BASE_COLUMNS + (SOKETI_LIMIT_COLUMNS if limits else "")
    return (
        f"CREATE TABLE `{table}` ({columns},\n    PRIMARY KEY (`id`)\n) DEFAULT CHARSET={charset}"
    )


def mysql_fragment(table: str, layout: str = "sockudo", **extra: Any) -> dict[str, Any]:
    """A ``database.mysql`` section for ``table``."""
    return {**MYSQL, "table_name": table, "table_layout": layout, **extra}


def session_table(prefix: str) -> str:
    """A new table name, dropped at the end of the session."""
    name = f"{prefix}_{SESSION_TAG}_{uuid.uuid4().hex[:6]}"
    _TABLES.add(name)
    return name


def connect() -> pymysql.connections.Connection[Any]:
    """A plain (blocking) connection for set-up and raw SQL."""
    try:
        return pymysql.connect(
            host=MYSQL["host"],
            port=MYSQL["port"],
            user=MYSQL["username"],
            password=MYSQL["password"],
            database=MYSQL["database"],
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=3,
        )
    except pymysql.err.MySQLError as exc:
        raise RuntimeError(
            f"MariaDB/MySQL is not reachable at {MYSQL['host']}:{MYSQL['port']} (user root, "
            f"empty password, database `test`): {exc}. Start it (`make test` does), e.g. "
            "`service mariadb start`."
        ) from exc


def execute(sql: str, args: Any = None) -> list[dict[str, Any]]:
    """Run one statement; its rows as dicts."""
    with connect() as conn, conn.cursor(pymysql.cursors.DictCursor) as cursor:
        cursor.execute(sql, args)
        return list(cursor.fetchall())


def drop(*tables: str) -> None:
    with connect() as conn, conn.cursor() as cursor:
        for table in tables:
            cursor.execute(f"DROP TABLE IF EXISTS `{table}`")


@pytest.fixture(scope="session")
def mysql_tables() -> Iterator[None]:
    """soketi's table for the contract suite; every session table dropped at the end."""
    drop(SOKETI_TABLE)
    execute(soketi_ddl(SOKETI_TABLE))
    try:
        yield
    finally:
        drop(*sorted(_TABLES))


def resolve_mysql(request: pytest.FixtureRequest, fragment: dict[str, Any]) -> dict[str, Any]:
    """``fragment`` as it is; when it names ``database.mysql``, the ``mysql_tables`` session
    fixture is started first (soketi's table exists, the tables are dropped at the end)."""
    if isinstance(fragment.get("database"), dict) and "mysql" in fragment["database"]:
        request.getfixturevalue("mysql_tables")
    return fragment
