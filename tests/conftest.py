"""Shared pytest fixtures. Keep machinery in helper modules; only register fixtures here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from interop_server import RunningServer, ServerFactory
from moto_server import moto_server as moto_server  # the session's AWS emulator
from mysql_store import mysql_tables as mysql_tables  # the session's MariaDB tables
from redis_cluster import redis_cluster as redis_cluster  # the session's Redis Cluster


@pytest.fixture
def sockudo_server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Call it to start sockudo-py as a real process on free ports:
    ``server = sockudo_server_factory(extra_config={...}, app_overrides={...})``.
    Every server it started is stopped (by PID) at teardown."""
    with ServerFactory(tmp_path) as factory:
        yield factory


@pytest.fixture
def sockudo_server(sockudo_server_factory: ServerFactory) -> RunningServer:
    """One sockudo-py process with the default app (app-id / app-key / app-secret)."""
    return sockudo_server_factory()


@pytest.fixture(scope="module")
def sockudo_server_factory_module(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerFactory]:
    """Like ``sockudo_server_factory`` but shared by the tests of one module (for servers
    that several tests use: module-scoped fixtures of their own call it)."""
    with ServerFactory(tmp_path_factory.mktemp("sockudo")) as factory:
        yield factory


@pytest.fixture(scope="module")
def sockudo_server_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Like ``sockudo_server`` but shared by the tests of one module."""
    with ServerFactory(tmp_path_factory.mktemp("sockudo")) as factory:
        yield factory()
