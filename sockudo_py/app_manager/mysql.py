"""The ``mysql`` app manager: apps in a MySQL / MariaDB table, in Sockudo's or soketi's layout.

``database.mysql.table_layout`` picks the table's shape:

``sockudo`` (default)
    Sockudo's ``applications`` table (``ops/migrations/mysql/001_fresh_schema.sql``), created
    when missing, with every column Sockudo has: flat columns for credentials, switches and
    limits, JSON ``webhooks`` / ``allowed_origins``, and the JSON ``policy`` column in
    Sockudo's nested shape ``{limits, features, channels, webhooks}``. We write both: the flat
    columns (as Sockudo writes them) and a ``policy`` holding every field of the app, so the
    fields Sockudo has no column for (``enable_subscription_count``, ``decay_seconds``,
    ``terminate_on_limit``, ``message_rate_limit``) and fractional ``*_in_kb`` limits (the
    columns are whole numbers) round-trip. Reading, ``policy`` values win over the flat
    columns, NULL means "the default", so rows Sockudo wrote (policy NULL, or a partial one)
    read as they are. Differences from Sockudo's DDL: ``id`` and ``key`` are ``utf8mb4_bin``
    (Pusher ids and keys are case-sensitive; Sockudo's ``utf8mb4_unicode_ci`` would make
    ``Key`` and ``key`` the same app). A Sockudo table that lacks a nullable column of the
    fresh schema (an older Sockudo) gets it added, as Sockudo itself does.

``soketi``
    soketi's ``apps`` table as it is (columns ``id, key, secret, max_connections, enabled,
    enable_client_messages, max_backend_events_per_sec, max_client_events_per_sec,
    max_read_req_per_sec, webhooks`` and, since soketi 0.29/1.0, the seven per-app limit
    columns and ``enable_user_authentication``). It is never created nor altered: a missing
    table is reported (``AppManagerUnavailable``, retried, so a migration run later is picked
    up). Unlimited is written as soketi writes it (-1). Fields soketi has no column for
    (``enable_watchlist_events``, ``enable_subscription_count``, ``decay_seconds``,
    ``terminate_on_limit``, ``message_rate_limit``, ``allowed_origins``, plus the limit
    columns an older soketi table lacks) are not stored: they read back as their defaults,
    and ``unstored_fields`` names them. Values must fit soketi's column types (soketi's 0.29
    upgrade notes declare the limit columns ``tinyint(1)``, which holds at most 127; use
    ``INT`` / ``DOUBLE``): a value that does not fit makes ``upsert`` raise ``ValueError``.

In both layouts lookups are exact: parameterised ``=`` (no ``LIKE``), then the match is
checked in Python, so a case-insensitive or PAD SPACE collation of an existing table never
makes ``KEY`` or ``key `` find ``key``. A value the column's character set cannot hold (an
emoji in a ``utf8mb3`` table) finds nothing. A row with a missing or invalid field is logged
(warning, with its app id) and treated as absent.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import ValidationError

from ..config import App, SqlConnection
from .base import AppManager, AppManagerUnavailable, invalid_app_reason

try:
    import aiomysql
    import pymysql
    from pymysql.constants import CLIENT
except ImportError as exc:  # pragma: no cover - exercised by a test with the package hidden
    raise ImportError(
        "app_manager.driver 'mysql' needs aiomysql: pip install 'sockudo-py[mysql]'"
    ) from exc

log = logging.getLogger("sockudo_py.app_manager")

T = TypeVar("T")

APP_FIELDS: tuple[str, ...] = tuple(App.model_fields)

# --- Sockudo's layout -------------------------------------------------------------------------

# (column, definition) of Sockudo's fresh schema, in its order; ``id``/``key`` made binary.
SOCKUDO_SCHEMA: tuple[tuple[str, str], ...] = (
    ("id", "VARCHAR(255) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY"),
    ("key", "VARCHAR(255) COLLATE utf8mb4_bin NOT NULL UNIQUE"),
    ("secret", "VARCHAR(255) NOT NULL"),
    ("max_connections", "INT UNSIGNED NOT NULL"),
    ("enable_client_messages", "BOOLEAN NOT NULL DEFAULT FALSE"),
    ("enabled", "BOOLEAN NOT NULL DEFAULT TRUE"),
    ("max_backend_events_per_second", "INT UNSIGNED NULL"),
    ("max_client_events_per_second", "INT UNSIGNED NOT NULL"),
    ("max_read_requests_per_second", "INT UNSIGNED NULL"),
    ("max_presence_members_per_channel", "INT UNSIGNED NULL"),
    ("max_presence_member_size_in_kb", "INT UNSIGNED NULL"),
    ("max_channel_name_length", "INT UNSIGNED NULL"),
    ("max_event_channels_at_once", "INT UNSIGNED NULL"),
    ("max_event_name_length", "INT UNSIGNED NULL"),
    ("max_event_payload_in_kb", "INT UNSIGNED NULL"),
    ("max_event_batch_size", "INT UNSIGNED NULL"),
    ("enable_user_authentication", "BOOLEAN NULL"),
    ("enable_watchlist_events", "BOOLEAN NULL"),
    ("policy", "JSON NULL"),
    ("webhooks", "JSON NULL"),
    ("allowed_origins", "JSON NULL"),
    ("channel_delta_compression", "JSON NULL"),
    ("idempotency", "JSON NULL"),
    ("connection_recovery", "JSON NULL"),
    ("created_at", "TIMESTAMP DEFAULT CURRENT_TIMESTAMP"),
    ("updated_at", "TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP"),
)
# Columns added to an existing Sockudo table that lacks them (they may be NULL).
SOCKUDO_ADDABLE = tuple(
    (name, definition)
    for name, definition in SOCKUDO_SCHEMA
    if name not in {"id", "key", "secret", "max_connections", "max_client_events_per_second"}
)
# column -> App field, for the columns we read and write (the V2 JSON ones are Sockudo's own).
SOCKUDO_COLUMNS: dict[str, str] = {
    name: name for name, _ in SOCKUDO_SCHEMA if name in App.model_fields
}
# Flat columns Sockudo declares as whole numbers while our fields are floats.
WHOLE_KB_COLUMNS = frozenset({"max_presence_member_size_in_kb", "max_event_payload_in_kb"})
TOP_LEVEL_FIELDS = frozenset({"id", "key", "secret", "enabled"})

# --- soketi's layout --------------------------------------------------------------------------

SOKETI_COLUMNS: dict[str, str] = {
    "id": "id",
    "key": "key",
    "secret": "secret",
    "max_connections": "max_connections",
    "enable_client_messages": "enable_client_messages",
    "enabled": "enabled",
    "max_backend_events_per_sec": "max_backend_events_per_second",
    "max_client_events_per_sec": "max_client_events_per_second",
    "max_read_req_per_sec": "max_read_requests_per_second",
    "webhooks": "webhooks",
    "max_presence_members_per_channel": "max_presence_members_per_channel",
    "max_presence_member_size_in_kb": "max_presence_member_size_in_kb",
    "max_channel_name_length": "max_channel_name_length",
    "max_event_channels_at_once": "max_event_channels_at_once",
    "max_event_name_length": "max_event_name_length",
    "max_event_payload_in_kb": "max_event_payload_in_kb",
    "max_event_batch_size": "max_event_batch_size",
    "enable_user_authentication": "enable_user_authentication",
}
# Our "unlimited" (0, or None) is soketi's -1.
SOKETI_MINUS_ONE_WHEN_ZERO = frozenset({"max_connections", "max_client_events_per_sec"})
SOKETI_MINUS_ONE_WHEN_NONE = frozenset({"max_backend_events_per_sec", "max_read_req_per_sec"})

JSON_COLUMNS = frozenset({"policy", "webhooks", "allowed_origins"})
REQUIRED_COLUMNS = ("id", "key", "secret")

# MySQL error numbers.
ER_COLLATION_MIX = frozenset({1267, 1270, 1271})  # a value the column's charset cannot hold
ER_DUP_FIELDNAME = 1060
ER_DUP_ENTRY = 1062
# The server refused the row itself (too long, out of range, bad string, constraint...).
ER_REFUSED_ROW = frozenset({1048, 1264, 1265, 1292, 1364, 1366, 1406, 3140, 4025})
ER_CONNECTION_LOST = frozenset({2006, 2013, 2055})


def _errno(exc: BaseException) -> int:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else 0


def _server_answered(exc: BaseException) -> bool:
    """True for an error the server sent (the connection is fine), False for a client-side
    one (2000-2999: lost, refused, ...) after which the connection cannot be trusted."""
    code = _errno(exc)
    return isinstance(exc, pymysql.err.MySQLError) and code != 0 and not 2000 <= code < 3000


def _in_doubt(exc: BaseException) -> bool:
    """After this error the connection's state is unknown (a query may be half-read)."""
    if isinstance(exc, asyncio.CancelledError | TimeoutError | OSError):
        return True
    return isinstance(exc, pymysql.err.MySQLError) and not _server_answered(exc)


def _quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


def _json_number(value: Any) -> Any:
    """Whole floats as ints: Sockudo's integer limits do not parse ``2.0``."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def webhooks_json(app: App, layout: str) -> list[dict[str, Any]]:
    """The app's webhooks as the layout's server spells them (``lambda``/``async`` keys;
    Sockudo's ``channel_prefix``/``channel_suffix`` or soketi's ``channel_name_*`` filter);
    unset fields left out. Both spellings read back into ``Webhook``."""
    out = []
    for webhook in app.webhooks:
        data = webhook.model_dump(mode="json", exclude_none=True)
        if "lambda_" in data:
            lam = data.pop("lambda_")
            if "async_" in lam:
                lam["async"] = lam.pop("async_")
            data["lambda"] = lam
        flt = data.get("filter")
        if isinstance(flt, dict) and layout == "sockudo":
            renames = {
                "channel_name_starts_with": "channel_prefix",
                "channel_name_ends_with": "channel_suffix",
            }
            data["filter"] = {renames.get(k, k): v for k, v in flt.items()}
        out.append(data)
    return out


def sockudo_policy(app: App) -> dict[str, Any]:
    """Every field of ``app`` but the credentials, in Sockudo's nested ``policy`` shape:
    ``enable_*`` switches under ``features``, ``allowed_origins`` under ``channels``,
    ``webhooks`` on its own, every other (limit) field under ``limits``. Unset (None) values
    are left out, so Sockudo and we read them as the default."""
    policy: dict[str, Any] = {"limits": {}, "features": {}, "channels": {}}
    for name in APP_FIELDS:
        if name in TOP_LEVEL_FIELDS or name == "webhooks":
            continue
        value = getattr(app, name)
        if value is None:
            continue
        if hasattr(value, "model_dump"):
            value = value.model_dump(mode="json")
        if name.startswith("enable_"):
            group = "features"
        elif name == "allowed_origins":
            group = "channels"
        else:
            group = "limits"
        policy[group][name] = _json_number(value)
    policy["webhooks"] = webhooks_json(app, "sockudo")
    return policy


class MySqlAppManager(AppManager):
    """Apps in a MySQL or MariaDB table (``database.mysql``), through a pool of aiomysql
    connections (``pool_min`` .. ``pool_max``, else up to ``connection_pool_size``).

    Contract: ``connect`` opens the pool and, for the ``sockudo`` layout, creates the table
    when missing (the ``soketi`` layout requires soketi's existing table). Lookups are exact
    and parameterised; a row that does not make a valid ``App`` is logged and treated as
    absent. Each operation either answers or raises ``AppManagerUnavailable`` within
    ``connect_timeout`` (opening a connection) / ``query_timeout`` (the whole operation,
    waiting for a pooled connection included). ``upsert`` raises ``ValueError`` when the
    table refuses the app (a key another app has, a value its columns cannot hold).
    ``unstored_fields`` names the ``App`` fields the table has no place for (soketi layout);
    it is final after ``connect``. See the module docstring for both layouts.
    """

    connect_timeout: float = 3.0
    query_timeout: float = 5.0
    pool_recycle: float = 180.0  # seconds an idle connection is kept (Sockudo's idle timeout)

    def __init__(self, connection: SqlConnection, seed: Iterable[App] = ()) -> None:
        super().__init__(seed)
        self.connection = connection
        self.layout = connection.table_layout
        self.table = _quote(connection.table_name)
        self._pool: Any = None
        self._column_field = dict(SOKETI_COLUMNS if self.layout == "soketi" else SOCKUDO_COLUMNS)
        self._columns: list[str] = list(self._column_field)
        self._has_policy = self.layout == "sockudo"
        self.unstored_fields = self._unstored()
        self._warned: set[str] = set()

    @property
    def where(self) -> str:
        c = self.connection
        return f"mysql {c.host}:{c.port}/{c.database} table {c.table_name!r}"

    # --- connection --------------------------------------------------------------------------

    async def connect(self) -> None:
        if self._pool is None:
            c = self.connection
            maxsize = c.pool_max or c.connection_pool_size
            minsize = min(c.pool_min if c.pool_min is not None else 1, maxsize)
            try:
                async with asyncio.timeout(self.connect_timeout + 1):
                    self._pool = await aiomysql.create_pool(
                        minsize=minsize,
                        maxsize=maxsize,
                        pool_recycle=self.pool_recycle,
                        host=c.host,
                        port=c.port,
                        user=c.username,
                        password=c.password,
                        db=c.database,
                        charset="utf8mb4",
                        autocommit=True,
                        connect_timeout=self.connect_timeout,
                        # values that do not fit a column are errors, not silent truncation;
                        # and no ANSI_QUOTES / NO_BACKSLASH_ESCAPES from the server's mode
                        # (quoted: aiomysql inlines it)
                        sql_mode="'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'",
                        # UPDATE's rowcount counts matched rows, changed or not
                        client_flag=CLIENT.FOUND_ROWS,
                    )
            except (TimeoutError, OSError, pymysql.err.MySQLError) as exc:
                raise AppManagerUnavailable(f"{self.where}: cannot connect: {exc!r}") from exc
        await self._run(self._prepare_table)

    async def stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
            try:
                await asyncio.wait_for(pool.wait_closed(), self.query_timeout)
            except TimeoutError:
                pool.terminate()

    async def _run(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """``work(cursor)`` on a pooled connection within ``query_timeout``; a connection
        that went stale in the pool is replaced once. A connection in doubt (timeout, client
        error) is closed, not returned to the pool. Server errors are re-raised as they are
        for the caller to judge; everything else is ``AppManagerUnavailable``."""
        pool = self._pool
        if pool is None:
            raise AppManagerUnavailable(f"{self.where}: not connected")
        try:
            async with asyncio.timeout(self.query_timeout):
                for attempt in (1, 2):
                    conn = await pool.acquire()
                    try:
                        async with conn.cursor(aiomysql.DictCursor) as cursor:
                            return await work(cursor)
                    except BaseException as exc:
                        if _in_doubt(exc):
                            conn.close()
                        if attempt == 1 and _errno(exc) in ER_CONNECTION_LOST:
                            continue
                        raise
                    finally:
                        pool.release(conn)
        except TimeoutError as exc:
            raise AppManagerUnavailable(
                f"{self.where}: no answer within {self.query_timeout:g}s"
            ) from exc
        except (OSError, pymysql.err.MySQLError) as exc:
            if _server_answered(exc):
                raise
            raise AppManagerUnavailable(f"{self.where}: {exc!r}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # --- table -------------------------------------------------------------------------------

    async def _present_columns(self, cursor: Any) -> set[str]:
        await cursor.execute(
            "SELECT COLUMN_NAME AS name FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (self.connection.table_name,),
        )
        return {str(row["name"]).lower() for row in await cursor.fetchall()}

    async def _prepare_table(self, cursor: Any) -> None:
        present = await self._present_columns(cursor)
        if not present and self.layout == "soketi":
            raise AppManagerUnavailable(
                f"{self.where}: no such table; table_layout 'soketi' uses soketi's existing "
                "apps table and does not create it"
            )
        if not present:
            columns = ",\n  ".join(f"{_quote(n)} {d}" for n, d in SOCKUDO_SCHEMA)
            await cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} (\n  {columns}\n) "
                "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
            )
            log.info("app manager: created %s", self.where)
            present = await self._present_columns(cursor)
        elif self.layout == "sockudo":
            for name, definition in SOCKUDO_ADDABLE:
                if name in present:
                    continue
                try:
                    await cursor.execute(
                        f"ALTER TABLE {self.table} ADD COLUMN {_quote(name)} {definition}"
                    )
                    log.info("app manager: added column %s to %s", name, self.where)
                except pymysql.err.MySQLError as exc:
                    if _errno(exc) != ER_DUP_FIELDNAME:  # another node added it meanwhile
                        if not _server_answered(exc):
                            raise
                        log.warning("app manager: cannot add column %s: %s", name, exc)
                        continue
                present.add(name)
        missing = [name for name in REQUIRED_COLUMNS if name not in present]
        if missing:
            raise AppManagerUnavailable(
                f"{self.where}: no column {', '.join(missing)}; is table_layout "
                f"{self.layout!r} the right one?"
            )
        self._columns = [name for name in self._column_field if name in present]
        self._has_policy = self.layout == "sockudo" and "policy" in present
        if self._has_policy:
            self._columns.append("policy")
        self.unstored_fields = self._unstored()
        if self.unstored_fields:
            log.info(
                "app manager: %s has no place for %s; they read back as defaults",
                self.where,
                ", ".join(sorted(self.unstored_fields)),
            )

    def _unstored(self) -> frozenset[str]:
        if self._has_policy:
            return frozenset()
        stored = {self._column_field[c] for c in self._columns if c in self._column_field}
        return frozenset(APP_FIELDS) - stored

    # --- rows --------------------------------------------------------------------------------

    def _select(self, where: str = "") -> str:
        columns = ", ".join(_quote(c) for c in self._columns)
        return f"SELECT {columns} FROM {self.table}{where}"

    def _to_app(self, row: dict[str, Any]) -> App | None:
        """The ``App`` of a row, or None (logged) when a field is missing or invalid."""
        app_id = row.get("id")
        data: dict[str, Any] = {}
        try:
            for column, value in row.items():
                if isinstance(value, bytes | bytearray):
                    value = bytes(value).decode()
                if isinstance(value, Decimal):
                    value = int(value) if value == value.to_integral_value() else float(value)
                if column in JSON_COLUMNS and isinstance(value, str):
                    value = json.loads(value) if value.strip() else None
                if value is None:
                    continue  # NULL: the default
                if column == "policy":
                    data["policy"] = self._clean_policy(value)
                else:
                    data[self._column_field[column]] = value
            return App.model_validate(data)
        except (ValidationError, ValueError, TypeError) as exc:
            if isinstance(exc, ValidationError):
                reason = invalid_app_reason(exc, "row")
            else:
                reason = str(exc).replace("\n", "; ")
            note = f"{app_id!r}: {reason}"
            if note not in self._warned:
                if len(self._warned) > 1000:
                    self._warned.clear()
                self._warned.add(note)
                log.warning(
                    "app manager: ignoring app %r in %s, its row is invalid: %s",
                    app_id,
                    self.where,
                    reason,
                )
            return None

    @staticmethod
    def _clean_policy(policy: Any) -> dict[str, Any]:
        """Sockudo's policy with null entries dropped (null means "the default")."""
        if not isinstance(policy, dict):
            raise ValueError(f"policy is not a JSON object: {policy!r}")
        clean: dict[str, Any] = {}
        for group, values in policy.items():
            if isinstance(values, dict):
                values = {k: v for k, v in values.items() if v is not None}
            if values is not None:
                clean[group] = values
        return clean

    def _values(self, app: App) -> dict[str, Any]:
        """column -> value of ``app`` for the present columns of the layout."""
        values: dict[str, Any] = {}
        for column in self._columns:
            if column == "policy":
                values[column] = json.dumps(sockudo_policy(app), ensure_ascii=False)
                continue
            value = getattr(app, self._column_field[column])
            if column == "webhooks":
                value = json.dumps(webhooks_json(app, self.layout), ensure_ascii=False)
            elif column == "allowed_origins":
                value = json.dumps(value, ensure_ascii=False)
            elif self.layout == "sockudo" and column in WHOLE_KB_COLUMNS:
                value = round(value)
            elif column in SOKETI_MINUS_ONE_WHEN_ZERO and self.layout == "soketi":
                value = -1 if value == 0 else value
            elif column in SOKETI_MINUS_ONE_WHEN_NONE and self.layout == "soketi":
                value = -1 if value is None else value
            values[column] = value
        return values

    # --- lookups -----------------------------------------------------------------------------

    async def _lookup(self, column: str, value: str) -> list[App]:
        """Valid apps whose ``column`` is exactly ``value``."""
        sql = self._select(f" WHERE {_quote(column)} = %s")

        async def work(cursor: Any) -> list[dict[str, Any]]:
            await cursor.execute(sql, (value,))
            return list(await cursor.fetchall())

        try:
            rows = await self._run(work)
        except pymysql.err.MySQLError as exc:
            if _errno(exc) in ER_COLLATION_MIX:
                return []  # the column cannot hold this value, so no row has it
            raise AppManagerUnavailable(f"{self.where}: lookup failed: {exc!r}") from exc
        apps = []
        for row in rows:
            found = row.get(column)
            if found is None or str(found) != value:  # a collation's near-match
                continue
            app = self._to_app(row)
            if app is not None:
                apps.append(app)
        return apps

    async def find_by_id(self, app_id: str) -> App | None:
        apps = await self._lookup("id", app_id)
        return apps[0] if apps else None

    async def find_by_key(self, key: str) -> App | None:
        apps = await self._lookup("key", key)
        return apps[0] if apps else None

    async def all_apps(self) -> list[App]:
        sql = self._select()

        async def work(cursor: Any) -> list[dict[str, Any]]:
            await cursor.execute(sql)
            return list(await cursor.fetchall())

        try:
            rows = await self._run(work)
        except pymysql.err.MySQLError as exc:
            raise AppManagerUnavailable(f"{self.where}: listing failed: {exc!r}") from exc
        return [app for row in rows if (app := self._to_app(row)) is not None]

    # --- writes ------------------------------------------------------------------------------

    async def upsert(self, app: App) -> None:
        values = self._values(app)
        columns = list(values)
        assignments = ", ".join(f"{_quote(c)} = %s" for c in columns if c != "id")
        update = f"UPDATE {self.table} SET {assignments} WHERE `id` = %s"
        update_args = [values[c] for c in columns if c != "id"] + [app.id]
        insert = (
            f"INSERT INTO {self.table} ({', '.join(_quote(c) for c in columns)}) "
            f"VALUES ({', '.join(['%s'] * len(columns))})"
        )
        holders = f"SELECT `id`, `key` FROM {self.table} WHERE `id` = %s OR `key` = %s"

        async def work(cursor: Any) -> None:
            # the rows the table's collation takes for this id or key must be this app's
            await cursor.execute(holders, (app.id, app.key))
            for row in await cursor.fetchall():
                other, other_key = str(row["id"]), str(row["key"])
                if other == app.id:
                    continue
                if other_key == app.key:
                    problem = f"key {app.key!r} belongs to app {other!r}"
                else:  # a case-insensitive / PAD SPACE collation of an existing table
                    problem = f"the table's collation takes it for app {other!r} ({other_key!r})"
                raise ValueError(f"app {app.id!r}: {problem} in {self.where}")
            await cursor.execute(update, update_args)
            if cursor.rowcount > 0:
                return
            try:
                await cursor.execute(insert, [values[c] for c in columns])
            except pymysql.err.IntegrityError as exc:
                if _errno(exc) != ER_DUP_ENTRY:
                    raise
                # another node inserted this app meanwhile: replace its fields
                await cursor.execute(update, update_args)
                if cursor.rowcount == 0:
                    raise

        try:
            await self._run(work)
        except pymysql.err.MySQLError as exc:
            code = _errno(exc)
            if isinstance(exc, pymysql.err.IntegrityError | pymysql.err.DataError) or (
                code in ER_REFUSED_ROW | ER_COLLATION_MIX
            ):
                raise ValueError(f"app {app.id!r} cannot be stored in {self.where}: {exc}") from exc
            raise AppManagerUnavailable(f"{self.where}: upsert failed: {exc!r}") from exc

    async def remove(self, app_id: str) -> bool:
        async def work(cursor: Any) -> bool:
            await cursor.execute(f"SELECT `id` FROM {self.table} WHERE `id` = %s", (app_id,))
            if not any(str(row["id"]) == app_id for row in await cursor.fetchall()):
                return False
            await cursor.execute(f"DELETE FROM {self.table} WHERE `id` = %s", (app_id,))
            return bool(cursor.rowcount)

        try:
            return await self._run(work)
        except pymysql.err.MySQLError as exc:
            if _errno(exc) in ER_COLLATION_MIX:
                return False
            raise AppManagerUnavailable(f"{self.where}: remove failed: {exc!r}") from exc
