"""The ``memory`` app manager: the apps listed in ``app_manager.array.apps``."""

from __future__ import annotations

from collections.abc import Iterable

from ..config import App
from .base import AppManager


class MemoryAppManager(AppManager):
    """Apps held in process, indexed by id and by key."""

    def __init__(self, apps: Iterable[App]) -> None:
        self._by_id: dict[str, App] = {}
        self._by_key: dict[str, App] = {}
        for app in apps:
            self._by_id[app.id] = app
            self._by_key[app.key] = app

    async def find_by_id(self, app_id: str) -> App | None:
        return self._by_id.get(app_id)

    async def find_by_key(self, key: str) -> App | None:
        return self._by_key.get(key)

    async def all_apps(self) -> list[App]:
        return list(self._by_id.values())
