"""App-manager contract (``sockudo_py.app_manager.base.AppManager``), run against every
app-manager driver. Each test seeds its own apps through ``app_manager_factory``.

Capability: a store that has no place for some ``App`` fields (soketi's MySQL table) names
them in ``AppManager.unstored_fields``; the round-trip checks then expect exactly those fields
at their defaults (``as_stored``) and every other field unchanged. The credentials and the
enabled switch must always be stored."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from sockudo_py.app_manager import AppManager
from sockudo_py.config import App

AppManagerFactory = Callable[[list[App]], Awaitable[AppManager]]


def app(app_id: str, **fields: object) -> App:
    return App.model_validate(
        {"id": app_id, "key": f"key-{app_id}", "secret": f"secret-{app_id}", **fields}
    )


def as_stored(manager: AppManager, expected: App) -> App:
    """``expected`` as ``manager`` can hold it: its ``unstored_fields`` at their defaults."""
    defaults = App(id="-", key="-", secret="-")
    reset = {name: getattr(defaults, name) for name in manager.unstored_fields}
    return expected.model_copy(update=reset)


def full_app(app_id: str) -> App:
    """An app with every per-app field away from its default."""
    return App.model_validate(
        {
            "id": app_id,
            "key": f"key-{app_id}",
            "secret": "s3cr3t-ü",
            "enabled": True,
            "max_connections": 250,
            "enable_client_messages": True,
            "enable_user_authentication": True,
            "enable_watchlist_events": True,
            "enable_subscription_count": True,
            "max_client_events_per_second": 15,
            "decay_seconds": 3,
            "terminate_on_limit": True,
            "message_rate_limit": {
                "enabled": True,
                "max_attempts": 7,
                "decay_seconds": 2,
                "terminate_on_limit": True,
            },
            "max_backend_events_per_second": 40,
            "max_read_requests_per_second": 30,
            "max_presence_members_per_channel": 50,
            "max_presence_member_size_in_kb": 1.5,
            "max_channel_name_length": 150,
            "max_event_channels_at_once": 20,
            "max_event_name_length": 120,
            "max_event_payload_in_kb": 64.5,
            "max_event_batch_size": 5,
            "allowed_origins": ["https://example.com", "*.example.org"],
            "webhooks": [
                {
                    "url": "https://hooks.example.com/pusher",
                    "event_types": ["channel_occupied", "member_added"],
                    "filter": {"channel_name_starts_with": "private-", "channel_pattern": "^a"},
                    "headers": {"X-Token": "t0k"},
                    "retry": {"max_attempts": 4, "initial_backoff_ms": 10},
                    "request_timeout_ms": 1500,
                },
                {
                    "lambda_function": "fn",
                    "lambda": {"function_name": "fn", "region": "eu-west-1", "async": False},
                    "event_types": ["client_event"],
                },
            ],
        }
    )


async def test_unstored_fields_are_declared(
    app_manager_factory: AppManagerFactory, uid: str
) -> None:
    """What a store cannot hold is declared, by field name; never the credentials."""
    manager = await app_manager_factory([app(f"{uid}-cap")])
    assert isinstance(manager.unstored_fields, frozenset)
    assert manager.unstored_fields <= set(App.model_fields)
    assert not manager.unstored_fields & {"id", "key", "secret", "enabled"}


async def test_find_hit_and_miss(app_manager_factory: AppManagerFactory, uid: str) -> None:
    one = app(f"{uid}-1")
    manager = await app_manager_factory([one])
    assert (found := await manager.find_by_id(one.id)) is not None and found.key == one.key
    assert (found := await manager.find_by_key(one.key)) is not None and found.id == one.id
    assert await manager.find_by_id(f"{uid}-nope") is None
    assert await manager.find_by_key(f"key-{uid}-nope") is None
    assert await manager.find_by_id(one.key) is None  # a key is not an id
    assert await manager.find_by_key(one.id) is None  # and the other way round


async def test_disabled_app_is_returned_disabled(
    app_manager_factory: AppManagerFactory, uid: str
) -> None:
    off = app(f"{uid}-off", enabled=False)
    manager = await app_manager_factory([off])
    for found in (await manager.find_by_id(off.id), await manager.find_by_key(off.key)):
        assert found is not None and found.id == off.id and found.enabled is False


async def test_every_field_round_trips(app_manager_factory: AppManagerFactory, uid: str) -> None:
    full, plain = full_app(f"{uid}-full"), app(f"{uid}-plain")
    manager = await app_manager_factory([full, plain])
    for expected in (full, plain):
        for found in (
            await manager.find_by_id(expected.id),
            await manager.find_by_key(expected.key),
        ):
            assert found is not None
            assert found.model_dump() == as_stored(manager, expected).model_dump()


async def test_all_apps_lists_them(app_manager_factory: AppManagerFactory, uid: str) -> None:
    apps = [app(f"{uid}-a"), app(f"{uid}-b", enabled=False), full_app(f"{uid}-c")]
    manager = await app_manager_factory(apps)
    listed = {a.id: a for a in await manager.all_apps()}
    for expected in apps:
        assert listed[expected.id].model_dump() == as_stored(manager, expected).model_dump()


@pytest.mark.parametrize(
    "odd",
    [
        "",
        " ",
        "%",
        "_",
        "*",
        "key-%",
        "'; DROP TABLE applications; --",
        '"\\',
        "ключ🙂",
        "a/b?c#d",
        "x" * 1000,
        "nul\x00byte",
    ],
)
async def test_odd_lookups_are_misses(
    app_manager_factory: AppManagerFactory, uid: str, odd: str
) -> None:
    manager = await app_manager_factory([app(f"{uid}_1")])
    assert await manager.find_by_id(odd) is None
    assert await manager.find_by_key(odd) is None


async def test_wildcards_match_nothing(app_manager_factory: AppManagerFactory, uid: str) -> None:
    manager = await app_manager_factory([app(f"{uid}_1")])  # no LIKE / glob lookups
    for pattern in (f"{uid}%", f"{uid}_?", f"{uid}_*", f"{uid}__"):
        assert await manager.find_by_id(pattern) is None
        assert await manager.find_by_key(f"key-{pattern}") is None


async def test_two_apps_do_not_mix(app_manager_factory: AppManagerFactory, uid: str) -> None:
    # app b's key is app a's id: each lookup must answer from its own column
    a = app(f"{uid}-a", enable_client_messages=True, max_connections=5)
    b = App(id=f"{uid}-b", key=a.id, secret="secret-b", allowed_origins=["https://b.example"])
    manager = await app_manager_factory([a, b])
    assert (found := await manager.find_by_id(a.id)) is not None
    assert found.model_dump() == as_stored(manager, a).model_dump()
    assert (found := await manager.find_by_key(a.id)) is not None
    assert found.model_dump() == as_stored(manager, b).model_dump()
    assert (found := await manager.find_by_key(a.key)) is not None and found.id == a.id
    assert (found := await manager.find_by_id(b.id)) is not None and found.secret == "secret-b"


async def test_upsert_creates_and_replaces(
    app_manager_factory: AppManagerFactory, uid: str
) -> None:
    manager = await app_manager_factory([])
    first = app(f"{uid}-u", max_connections=3)
    await manager.upsert(first)
    assert (found := await manager.find_by_key(first.key)) is not None
    assert found.model_dump() == as_stored(manager, first).model_dump()

    rotated = full_app(f"{uid}-u").model_copy(update={"key": f"key-{uid}-new", "enabled": False})
    await manager.upsert(rotated)  # same id: every field replaced, the old key is gone
    assert (found := await manager.find_by_id(rotated.id)) is not None
    assert found.model_dump() == as_stored(manager, rotated).model_dump()
    assert await manager.find_by_key(first.key) is None
    assert (found := await manager.find_by_key(rotated.key)) is not None and not found.enabled
    assert [a.id for a in await manager.all_apps()].count(rotated.id) == 1


async def test_remove(app_manager_factory: AppManagerFactory, uid: str) -> None:
    keep, drop = app(f"{uid}-keep"), app(f"{uid}-drop")
    manager = await app_manager_factory([keep, drop])
    assert await manager.remove(drop.id) is True
    assert await manager.find_by_id(drop.id) is None
    assert await manager.find_by_key(drop.key) is None
    assert await manager.remove(drop.id) is False
    assert await manager.find_by_id(keep.id) is not None


async def test_seed_upsert_is_idempotent(app_manager_factory: AppManagerFactory, uid: str) -> None:
    """Every node upserts the inline apps at each start: doing it twice changes nothing."""
    one = app(f"{uid}-seed", max_connections=9)
    await app_manager_factory([one])
    manager = await app_manager_factory([one])
    assert [a.id for a in await manager.all_apps()].count(one.id) == 1
    assert (found := await manager.find_by_id(one.id)) is not None
    assert found.model_dump() == as_stored(manager, one).model_dump()
