"""The app-manager interface: who the tenants are."""

from __future__ import annotations

from abc import ABC, abstractmethod

from ..config import App


class AppManager(ABC):
    """Looks up apps by id (HTTP API) and by key (WebSocket). Lookups return ``None`` for an
    unknown app and never raise for a missing one; a disabled app is returned as such."""

    async def start(self) -> None:
        """Open connections. Called once before the server accepts traffic."""

    async def stop(self) -> None:
        """Release connections."""

    @abstractmethod
    async def find_by_id(self, app_id: str) -> App | None: ...

    @abstractmethod
    async def find_by_key(self, key: str) -> App | None: ...

    @abstractmethod
    async def all_apps(self) -> list[App]: ...
