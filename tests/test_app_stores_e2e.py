"""Tenants from a database, end to end with a real server process and real clients.

* A key that exists only in MariaDB (then only in DynamoDB on moto's server) works for
  pusher-js and the Pusher SDK; disabling the app in the store refuses new connections (4003)
  within ``app_manager.cache.ttl``.
* DynamoDB going away while the server runs (our own moto server, stopped mid-test): the
  apps the server has looked up keep working, unknown keys get 4001 at once, nothing hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from interop_server import RunningServer, ServerFactory, describe_failure, run_node
from moto_server import start_moto_server
from mysql_store import mysql_fragment, session_table
from pusher_ws import FrameTimeout, PusherWs, publish

from sockudo_py.app_manager import create_app_manager
from sockudo_py.config import App, Config

TTL = 1  # app_manager.cache.ttl of the servers here: the freshness bound under test


def dynamodb_fragment(url: str) -> dict[str, Any]:
    return {
        "dynamodb": {
            "region": "us-east-1",
            "endpoint_url": url,
            "table_name": f"apps-e2e-{secrets.token_hex(4)}",
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
        }
    }


def new_app(**fields: Any) -> App:
    return App(
        id=str(secrets.randbelow(9_000_000) + 1_000_000),
        key=secrets.token_hex(10),
        secret=secrets.token_hex(16),
        enable_client_messages=True,
        **fields,
    )


async def write_to_store(driver: str, database: dict[str, Any], app: App) -> None:
    """Upsert ``app`` straight into the store, as an operator's own tooling would."""
    config = Config.model_validate({"app_manager": {"driver": driver}, "database": database})
    store = create_app_manager(config)  # no cache: the server's cache is not told
    await store.start(retry=False)
    try:
        await store.upsert(app)
    finally:
        await store.stop()


def start_server(
    factory: ServerFactory, driver: str, database: dict[str, Any], app: App
) -> RunningServer:
    config = {
        "app_manager": {"driver": driver, "array": {"apps": []}, "cache": {"ttl": TTL}},
        "database": database,
    }
    server = factory(config, apps=[])
    server.apps.append(app.model_dump())  # what the clients use; the server has it from the store
    return server


async def refused_within(server: RunningServer, key: str, code: int, bound: float) -> float:
    """Seconds until a new connection with ``key`` is closed with ``code`` (at most ``bound``)."""
    started = time.monotonic()
    while True:
        client = await PusherWs.open(server, key)
        try:
            closed_with = await client.expect_close(timeout=0.5)
        except FrameTimeout:
            closed_with = None  # admitted
        await client.close()
        took = time.monotonic() - started
        if closed_with == code:
            return took
        assert took < bound, f"still admitted (or closed with {closed_with}) after {took:.1f}s"
        await asyncio.sleep(0.1)


@pytest.fixture(params=["mysql", "dynamodb"])
def store(request: pytest.FixtureRequest) -> Iterator[tuple[str, dict[str, Any]]]:
    """(driver, ``database`` section) of a fresh table in the store."""
    if request.param == "mysql":
        request.getfixturevalue("mysql_tables")  # drops the table at the end of the session
        yield "mysql", {"mysql": mysql_fragment(session_table("e2e"))}
    else:
        yield "dynamodb", dynamodb_fragment(request.getfixturevalue("moto_server").url)


def test_a_key_only_in_the_store(
    store: tuple[str, dict[str, Any]], sockudo_server_factory: ServerFactory
) -> None:
    driver, database = store
    app = new_app()
    asyncio.run(write_to_store(driver, database, app))
    server = start_server(sockudo_server_factory, driver, database, app)

    params = server.node_params(app=server.apps[0], scenario="public")
    result = run_node("run.mjs", params)  # pusher-js subscribes, the Node SDK publishes
    assert result.get("ok") and result["returncode"] == 0, describe_failure(result, server)

    asyncio.run(write_to_store(driver, database, app.model_copy(update={"enabled": False})))
    took = asyncio.run(refused_within(server, app.key, 4003, TTL + 2.0))
    assert took <= TTL + 2.0


def test_the_store_going_away_keeps_known_apps(sockudo_server_factory: ServerFactory) -> None:
    with contextlib.ExitStack() as stack:
        moto = stack.enter_context(start_moto_server())
        database = dynamodb_fragment(moto.url)
        app = new_app()
        asyncio.run(write_to_store("dynamodb", database, app))
        server = start_server(sockudo_server_factory, "dynamodb", database, app)

        async def scenario() -> None:
            known = await PusherWs.connect(server, app.key, app.secret)  # looked up by key
            await known.subscribe("news")
            await publish(server, server.apps[0], "news", "before", "1")  # and by id
            await known.expect("before", "news")

            moto.stop()  # the database goes away
            await asyncio.sleep(TTL + 0.5)  # past the cache ttl: only the last known copy
            started = time.monotonic()
            again = await PusherWs.connect(server, app.key, app.secret)
            await again.subscribe("news")
            await publish(server, server.apps[0], "news", "during", "2")
            for client in (known, again):
                await client.expect("during", "news")
            unknown = await PusherWs.open(server, "no-such-key")
            assert await unknown.expect_close(timeout=8) == 4001
            assert time.monotonic() - started < 8
            for client in (known, again, unknown):
                await client.close()

        asyncio.run(scenario())
