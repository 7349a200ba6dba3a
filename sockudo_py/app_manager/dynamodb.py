"""The ``dynamodb`` app manager: apps in a DynamoDB table, Sockudo's layout.

Table (``database.dynamodb.table_name``, Sockudo's default ``sockudo-applications``): hash key
``id`` (S), global secondary index ``KeyIndex`` with hash key ``key`` (S), projection ALL.
``connect`` creates it when missing (on-demand billing) and waits until it and the index are
ACTIVE.

Item written by ``upsert`` (what Sockudo writes too): ``id``, ``key``, ``secret`` (S),
``enabled`` (BOOL) and ``policy`` (S), a JSON string ``{limits, features, channels,
webhooks}`` holding every other ``App`` field (see :func:`app_to_item`).

Items read: that shape, or Sockudo's older flat one (every field its own attribute: numbers
N, switches BOOL, ``allowed_origins`` L of S, ``webhooks`` a JSON string). A ``policy`` value
wins over a flat attribute; a ``null`` anywhere (Sockudo's "unset") leaves the field at its
flat value or default; numbers come back as int or float, never Decimal. An item that does
not make a valid ``App`` is logged with its id and skipped (a lookup of it is a miss).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Iterable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import ValidationError

from ..config import App, DynamoDbConfig
from .base import AppManager, AppManagerUnavailable, invalid_app_reason

try:
    import aioboto3
    from boto3.dynamodb.types import TypeDeserializer
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError
except ImportError as exc:  # pragma: no cover - exercised by a test that hides aioboto3
    raise ImportError(
        "app_manager.driver 'dynamodb' needs aioboto3: pip install 'sockudo-py[aws]'"
    ) from exc

log = logging.getLogger("sockudo_py.app_manager")

KEY_INDEX = "KeyIndex"
MAX_KEY_BYTES = 2048
"""DynamoDB's limit on a partition-key value (table and index): longer ids/keys cannot exist."""

# Where each App field goes in Sockudo's policy object. Anything not listed (and not
# id/key/secret/enabled/webhooks) goes to ``limits``; ``App`` flattens every group back.
_FEATURES = frozenset(
    {
        "enable_client_messages",
        "enable_user_authentication",
        "enable_watchlist_events",
        "enable_subscription_count",
    }
)
_CHANNELS = frozenset({"allowed_origins"})
_TOP_LEVEL = frozenset({"id", "key", "secret", "enabled"})
# Our field names -> Sockudo's spelling inside webhook objects (App reads both).
_WEBHOOK_SPELLING = {"lambda_": "lambda"}
_LAMBDA_SPELLING = {"async_": "async"}
_FILTER_SPELLING = {
    "channel_name_starts_with": "channel_prefix",
    "channel_name_ends_with": "channel_suffix",
}

T = TypeVar("T")


class InvalidItem(ValueError):
    """A stored item that does not make a valid ``App``."""


def _respell(value: dict[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    return {names.get(k, k): v for k, v in value.items() if v is not None}


def _sockudo_webhook(webhook: dict[str, Any]) -> dict[str, Any]:
    """A dumped ``Webhook`` in Sockudo's spelling (``lambda``, ``async``, ``channel_prefix``,
    ``channel_suffix``), unset (None) fields left out."""
    out = _respell(webhook, _WEBHOOK_SPELLING)
    if isinstance(out.get("lambda"), dict):
        out["lambda"] = _respell(out["lambda"], _LAMBDA_SPELLING)
    if isinstance(out.get("filter"), dict):
        out["filter"] = _respell(out["filter"], _FILTER_SPELLING)
    if isinstance(out.get("retry"), dict):
        out["retry"] = _respell(out["retry"], {})
    return out


def _whole(value: Any) -> Any:
    # Sockudo's limits are u32: 2.0 must be written as 2 for it to read the policy
    return int(value) if isinstance(value, float) and value.is_integer() else value


def app_to_item(app: App) -> dict[str, Any]:
    """``app`` as a DynamoDB item (attribute-value form): Sockudo's ``id``, ``key``,
    ``secret``, ``enabled`` and the JSON ``policy`` holding every other field."""
    data = app.model_dump(mode="json")
    policy: dict[str, Any] = {"limits": {}, "features": {}, "channels": {}, "webhooks": []}
    for name, value in data.items():
        if name in _TOP_LEVEL:
            continue
        if name == "webhooks":
            policy["webhooks"] = [_sockudo_webhook(w) for w in value]
        elif name in _FEATURES:
            policy["features"][name] = value
        elif name in _CHANNELS:
            policy["channels"][name] = value
        else:
            policy["limits"][name] = _whole(value)
    return {
        "id": {"S": app.id},
        "key": {"S": app.key},
        "secret": {"S": app.secret},
        "enabled": {"BOOL": app.enabled},
        "policy": {"S": json.dumps(policy, ensure_ascii=False, separators=(",", ":"))},
    }


def _plain(value: Any) -> Any:
    """A deserialized attribute value with DynamoDB's types made JSON-like: Decimal -> int
    or float, sets -> sorted lists."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(v) for v in value), key=repr)
    return value


def _without_nulls(value: Any) -> Any:
    """``value`` with every ``None`` member of every object left out. Sockudo writes unset
    options as ``null`` (``max_channel_name_length: null``, a webhook retry's ``enabled:
    null``...): leaving them out gives the field its flat value or default, as in Sockudo."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _json_attribute(data: dict[str, Any], name: str) -> None:
    """Parse ``data[name]`` in place when it is a JSON string."""
    value = data.get(name)
    if isinstance(value, str):
        try:
            data[name] = json.loads(value) if value.strip() else None
        except json.JSONDecodeError as exc:
            raise InvalidItem(f"{name} is not valid JSON: {exc}") from exc


_deserializer = TypeDeserializer()


def item_to_app(item: Mapping[str, Any]) -> App:
    """The ``App`` stored in ``item`` (attribute-value form, either layout); raises
    ``InvalidItem`` saying why when it is not a valid app."""
    try:
        data = {name: _plain(_deserializer.deserialize(value)) for name, value in item.items()}
    except (TypeError, ValueError, KeyError) as exc:
        raise InvalidItem(f"unreadable attribute: {exc}") from exc
    _json_attribute(data, "policy")
    _json_attribute(data, "webhooks")
    policy = data.get("policy")
    if policy is not None and not isinstance(policy, dict):
        raise InvalidItem(f"policy is a {type(policy).__name__}, not a JSON object")
    data = _without_nulls(data)
    try:
        return App.model_validate(data)
    except ValidationError as exc:
        raise InvalidItem(invalid_app_reason(exc)) from exc


def _valid_key_value(value: str) -> bool:
    """Whether ``value`` could be stored as an id/key at all (a lookup of anything else is
    a miss, not a request DynamoDB would reject)."""
    if not value:
        return False
    try:
        return len(value.encode("utf-8")) <= MAX_KEY_BYTES
    except UnicodeEncodeError:  # lone surrogates
        return False


class DynamoDbAppManager(AppManager):
    """Apps in a DynamoDB table (Sockudo's layout, see the module doc); works against AWS and
    local emulators (``endpoint_url``).

    Contract, on top of ``AppManager``'s: ``connect`` creates the table (with ``KeyIndex``)
    when missing and waits for it to be ACTIVE; an existing table without a ``KeyIndex`` on
    ``key`` is a configuration error (``RuntimeError``). ``find_by_id`` is a consistent
    GetItem, ``find_by_key`` a Query on ``KeyIndex`` (eventually consistent, as every GSI);
    lookups are exact, and values that cannot be stored (empty, over 2048 bytes, not
    UTF-8-encodable) are misses. Two apps sharing a key is a data error: that key is a miss,
    logged. ``all_apps`` scans every page; ``upsert`` replaces the whole item; ``remove``
    says whether the item existed. Every call gives up within ``CALL_TIMEOUT`` seconds
    (connect/read timeouts ``CONNECT_TIMEOUT``/``READ_TIMEOUT``, ``MAX_ATTEMPTS`` tries) and
    raises ``AppManagerUnavailable`` for an unreachable endpoint, a missing table,
    throttling, credentials or permission errors.

    Credentials: ``aws_access_key_id``/``aws_secret_access_key`` when set, else
    ``aws_profile_name``, else the usual AWS chain (environment, shared files, instance role).
    """

    CONNECT_TIMEOUT = 2.0
    READ_TIMEOUT = 3.0
    MAX_ATTEMPTS = 2
    CALL_TIMEOUT = 8.0
    TABLE_ACTIVE_TIMEOUT = 60.0
    SCAN_PAGE_SIZE: int | None = None
    """Items per Scan request of ``all_apps`` (None: DynamoDB's 1 MB pages)."""

    def __init__(self, config: DynamoDbConfig, seed: Iterable[App] = ()) -> None:
        super().__init__(seed)
        self.config = config
        self.table = config.table_name
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None
        self._opening = asyncio.Lock()

    # ------------------------------------------------------------------ connection

    async def _open(self) -> Any:
        if self._client is not None:
            return self._client
        async with self._opening:
            if self._client is not None:
                return self._client
            cfg = self.config
            boto_config = BotoConfig(
                connect_timeout=self.CONNECT_TIMEOUT,
                read_timeout=self.READ_TIMEOUT,
                retries={"total_max_attempts": self.MAX_ATTEMPTS, "mode": "standard"},
            )
            stack = contextlib.AsyncExitStack()
            try:
                if cfg.aws_access_key_id or cfg.aws_secret_access_key:
                    session = aioboto3.Session(
                        aws_access_key_id=cfg.aws_access_key_id,
                        aws_secret_access_key=cfg.aws_secret_access_key,
                        region_name=cfg.region,
                    )
                else:
                    session = aioboto3.Session(
                        profile_name=cfg.aws_profile_name, region_name=cfg.region
                    )
                client = await stack.enter_async_context(
                    session.client(
                        "dynamodb",
                        region_name=cfg.region,
                        endpoint_url=cfg.endpoint_url or None,
                        config=boto_config,
                    )
                )
            except BotoCoreError as exc:
                # a bad region, profile or half-given key pair: configuration, not an outage
                await stack.aclose()
                raise RuntimeError(
                    f"database.dynamodb: cannot create the DynamoDB client: {exc}"
                ) from exc
            self._stack, self._client = stack, client
            return client

    async def connect(self) -> None:
        await self._open()
        description = await self._describe()
        if description is None:
            await self._create_table()
            description = await self._wait_active()
        elif not _is_active(description):
            description = await self._wait_active()
        _check_key_index(self.table, description)

    async def stop(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    async def _describe(self) -> dict[str, Any] | None:
        """The table's description, None when it does not exist."""
        try:
            response = await self._call(self._client_call("describe_table", TableName=self.table))
        except _NotFound:
            return None
        table: dict[str, Any] = response["Table"]
        return table

    async def _create_table(self) -> None:
        log.info("app manager (dynamodb): creating table %r with index %s", self.table, KEY_INDEX)
        # _InUse: another node is creating it; the caller waits for it to be ACTIVE
        with contextlib.suppress(_InUse):
            await self._call(
                self._client_call(
                    "create_table",
                    TableName=self.table,
                    KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                    AttributeDefinitions=[
                        {"AttributeName": "id", "AttributeType": "S"},
                        {"AttributeName": "key", "AttributeType": "S"},
                    ],
                    GlobalSecondaryIndexes=[
                        {
                            "IndexName": KEY_INDEX,
                            "KeySchema": [{"AttributeName": "key", "KeyType": "HASH"}],
                            "Projection": {"ProjectionType": "ALL"},
                        }
                    ],
                    BillingMode="PAY_PER_REQUEST",
                )
            )

    async def _wait_active(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.TABLE_ACTIVE_TIMEOUT
        delay = 0.1
        while True:
            description = await self._describe()
            if description is not None and _is_active(description):
                return description
            if time.monotonic() >= deadline:
                status = None if description is None else description.get("TableStatus")
                raise AppManagerUnavailable(
                    f"dynamodb: table {self.table!r} not ACTIVE after "
                    f"{self.TABLE_ACTIVE_TIMEOUT:.0f} s (status {status})"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    # ------------------------------------------------------------------ calls

    async def _client_call(self, operation: str, **params: Any) -> Any:
        client = await self._open()
        return await getattr(client, operation)(**params)

    async def _call(self, call: Awaitable[T], *, lookup: bool = False) -> T:
        """Await ``call`` within ``CALL_TIMEOUT``, mapping failures: unreachable, slow,
        throttled, missing table, refused credentials -> ``AppManagerUnavailable``; a value
        DynamoDB rejects -> ``_Rejected`` (a miss for lookups)."""
        try:
            return await asyncio.wait_for(call, self.CALL_TIMEOUT)
        except TimeoutError as exc:
            raise AppManagerUnavailable(
                f"dynamodb: no answer from {self._where()} within {self.CALL_TIMEOUT:.0f} s"
            ) from exc
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = error.get("Code", "?"), error.get("Message", str(exc))
            if code == "ResourceNotFoundException":
                raise _NotFound(message) from exc
            if code == "ResourceInUseException":
                raise _InUse(message) from exc
            if code == "ValidationException":
                raise _Rejected(f"{code}: {message}") from exc
            raise AppManagerUnavailable(f"dynamodb ({self._where()}): {code}: {message}") from exc
        except ParamValidationError as exc:
            raise _Rejected(str(exc)) from exc
        except (BotoCoreError, OSError) as exc:
            raise AppManagerUnavailable(f"dynamodb ({self._where()}): {exc}") from exc

    async def _request(self, operation: str, **params: Any) -> Any:
        """One data-plane call; a missing table is ``AppManagerUnavailable`` here."""
        try:
            return await self._call(self._client_call(operation, TableName=self.table, **params))
        except _NotFound as exc:
            raise AppManagerUnavailable(
                f"dynamodb: table {self.table!r} does not exist ({exc})"
            ) from exc

    def _where(self) -> str:
        return self.config.endpoint_url or f"region {self.config.region}"

    def _parse(self, item: Mapping[str, Any]) -> App | None:
        try:
            return item_to_app(item)
        except InvalidItem as exc:
            raw_id = item.get("id")
            app_id = raw_id.get("S", raw_id) if isinstance(raw_id, dict) else raw_id
            log.warning(
                "app manager (dynamodb): item of app %r in table %r is invalid, skipped: %s",
                app_id,
                self.table,
                exc,
            )
            return None

    # ------------------------------------------------------------------ AppManager

    async def find_by_id(self, app_id: str) -> App | None:
        if not _valid_key_value(app_id):
            return None
        try:
            response = await self._request(
                "get_item", Key={"id": {"S": app_id}}, ConsistentRead=True
            )
        except _Rejected as exc:
            log.debug("app manager (dynamodb): id %r rejected, a miss: %s", app_id, exc)
            return None
        item = response.get("Item")
        return None if item is None else self._parse(item)

    async def find_by_key(self, key: str) -> App | None:
        if not _valid_key_value(key):
            return None
        items: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        try:
            while True:
                params: dict[str, Any] = {
                    "IndexName": KEY_INDEX,
                    "KeyConditionExpression": "#k = :k",
                    "ExpressionAttributeNames": {"#k": "key"},
                    "ExpressionAttributeValues": {":k": {"S": key}},
                    "Limit": 2,  # one is the answer, two is a conflict
                }
                if start is not None:
                    params["ExclusiveStartKey"] = start
                response = await self._request("query", **params)
                items.extend(response.get("Items", []))
                start = response.get("LastEvaluatedKey")
                if start is None or len(items) >= 2:
                    break
        except _Rejected as exc:
            log.debug("app manager (dynamodb): key %r rejected, a miss: %s", key, exc)
            return None
        if not items:
            return None
        if len(items) > 1:
            ids = sorted(str(item.get("id", {}).get("S")) for item in items)
            log.error(
                "app manager (dynamodb): key %r is used by more than one app (%s); "
                "refusing it until only one app has it",
                key,
                ", ".join(ids),
            )
            return None
        item = items[0]
        if "secret" not in item and isinstance(item.get("id"), dict):
            # an index that does not project every attribute: read the item itself
            app = await self.find_by_id(str(item["id"].get("S", "")))
            return app if app is not None and app.key == key else None
        return self._parse(item)

    async def all_apps(self) -> list[App]:
        apps: list[App] = []
        start: dict[str, Any] | None = None
        while True:
            params: dict[str, Any] = {"ConsistentRead": True}
            if self.SCAN_PAGE_SIZE is not None:
                params["Limit"] = self.SCAN_PAGE_SIZE
            if start is not None:
                params["ExclusiveStartKey"] = start
            try:
                response = await self._request("scan", **params)
            except _Rejected as exc:
                raise AppManagerUnavailable(f"dynamodb: scan rejected: {exc}") from exc
            for item in response.get("Items", []):
                app = self._parse(item)
                if app is not None:
                    apps.append(app)
            start = response.get("LastEvaluatedKey")
            if start is None:
                return apps

    async def upsert(self, app: App) -> None:
        try:
            await self._request("put_item", Item=app_to_item(app))
        except _Rejected as exc:
            raise ValueError(f"app {app.id!r}: DynamoDB rejected it: {exc}") from exc

    async def remove(self, app_id: str) -> bool:
        if not _valid_key_value(app_id):
            return False
        try:
            response = await self._request(
                "delete_item", Key={"id": {"S": app_id}}, ReturnValues="ALL_OLD"
            )
        except _Rejected as exc:
            log.debug("app manager (dynamodb): id %r rejected, nothing removed: %s", app_id, exc)
            return False
        return bool(response.get("Attributes"))


class _NotFound(Exception):
    """ResourceNotFoundException: the table does not exist."""


class _InUse(Exception):
    """ResourceInUseException: the table is being created (or already exists)."""


class _Rejected(Exception):
    """DynamoDB rejected a parameter value (ValidationException)."""


def _is_active(description: Mapping[str, Any]) -> bool:
    if description.get("TableStatus") != "ACTIVE":
        return False
    return all(
        index.get("IndexStatus", "ACTIVE") == "ACTIVE"
        for index in description.get("GlobalSecondaryIndexes", [])
    )


def _hash_keys(key_schema: Iterable[Mapping[str, Any]]) -> list[Any]:
    return [k.get("AttributeName") for k in key_schema if k.get("KeyType") == "HASH"]


def _check_key_index(table: str, description: Mapping[str, Any]) -> None:
    """Raise ``RuntimeError`` unless the table is keyed by ``id`` with ``KeyIndex`` on ``key``."""
    if (table_keys := _hash_keys(description.get("KeySchema", []))) != ["id"]:
        raise RuntimeError(
            f"dynamodb: table {table!r} has hash key {table_keys}, expected ['id'] "
            "(Sockudo's layout)"
        )
    for index in description.get("GlobalSecondaryIndexes", []):
        if index.get("IndexName") == KEY_INDEX:
            hash_keys = _hash_keys(index.get("KeySchema", []))
            if hash_keys == ["key"]:
                return
            raise RuntimeError(
                f"dynamodb: index {KEY_INDEX} of table {table!r} has hash key {hash_keys}, "
                "expected ['key']"
            )
    raise RuntimeError(
        f"dynamodb: table {table!r} has no global secondary index {KEY_INDEX} on 'key' "
        "(Sockudo's layout); add it or point database.dynamodb.table_name at another table"
    )
