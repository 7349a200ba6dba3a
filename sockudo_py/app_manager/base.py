"""The app-manager interface: who the tenants are."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable

from pydantic import ValidationError

from ..config import App

log = logging.getLogger("sockudo_py.app_manager")


def invalid_app_reason(exc: ValidationError, root: str = "item") -> str:
    """Why a stored app is not a valid ``App``, as ``field: reason; ...``: never the values
    (pydantic's own text shows them, the secret among them)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or root}: {error['msg']}"
        for error in exc.errors(include_url=False, include_input=False)
    )


class AppManagerUnavailable(Exception):
    """The store cannot be reached (or did not answer in time); the lookup did not happen."""


class AppManager(ABC):
    """Looks up apps by id (HTTP API) and by key (WebSocket), and stores them (the ``apps``
    command, and the inline apps of config.json at start-up).

    Lookups return ``None`` for an unknown app and never raise for a missing one; a disabled
    app is returned as such. A store that cannot answer raises ``AppManagerUnavailable``
    (within a bounded time, never hanging). ``start`` upserts the ``seed`` apps it was built
    with (Sockudo upserts inline apps into whichever store is selected); a store that is down
    at start-up is retried with back-off.
    """

    unstored_fields: frozenset[str] = frozenset()
    """Capability: the ``App`` fields this store has no place for (soketi's MySQL table has
    no column for ``allowed_origins``...). ``upsert`` drops them and lookups return them at
    their defaults; every other field round-trips exactly. Empty for a store that keeps every
    field; final once ``connect`` has run."""

    def __init__(self, seed: Iterable[App] = ()) -> None:
        self.seed = list(seed)

    async def start(self, retry: bool = True) -> None:
        """Connect (creating the table if missing), then upsert the seed apps. With
        ``retry``, a store that is down is tried again with back-off (0.5 s to 10 s), each
        failure logged, until it answers; without, the first failure raises."""
        delay = 0.5
        while True:
            try:
                await self.connect()
                for app in self.seed:
                    await self.upsert(app)
                return
            except AppManagerUnavailable as exc:
                if not retry:
                    raise
                log.error("app manager: %s; retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def connect(self) -> None:
        """Open connections; create the store's table when missing."""

    async def stop(self) -> None:
        """Release connections."""

    @abstractmethod
    async def find_by_id(self, app_id: str) -> App | None: ...

    @abstractmethod
    async def find_by_key(self, key: str) -> App | None: ...

    @abstractmethod
    async def all_apps(self) -> list[App]: ...

    @abstractmethod
    async def upsert(self, app: App) -> None:
        """Create the app, or replace the one with its id (every field)."""

    @abstractmethod
    async def remove(self, app_id: str) -> bool:
        """Delete the app with ``app_id``; False if there was none."""
