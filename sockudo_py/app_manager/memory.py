"""The ``memory`` app manager: the apps listed in ``app_manager.array.apps``."""

from __future__ import annotations

from ..config import App
from .base import AppManager


class MemoryAppManager(AppManager):
    """Apps held in process, indexed by id and by key; they live as long as the process."""

    def __init__(self, seed: list[App]) -> None:
        super().__init__(seed)
        self._by_id: dict[str, App] = {}
        self._by_key: dict[str, App] = {}

    async def find_by_id(self, app_id: str) -> App | None:
        return self._by_id.get(app_id)

    async def find_by_key(self, key: str) -> App | None:
        return self._by_key.get(key)

    async def all_apps(self) -> list[App]:
        return list(self._by_id.values())

    async def upsert(self, app: App) -> None:
        await self.remove(app.id)
        self._by_id[app.id] = app
        self._by_key[app.key] = app

    async def remove(self, app_id: str) -> bool:
        old = self._by_id.pop(app_id, None)
        if old is None:
            return False
        if self._by_key.get(old.key) is old:
            del self._by_key[old.key]
        return True
