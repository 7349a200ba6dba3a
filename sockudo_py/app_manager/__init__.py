"""App managers: where the tenants come from."""

from __future__ import annotations

from ..cache.base import Cache
from ..config import Config
from .base import AppManager, AppManagerUnavailable

__all__ = ["AppManager", "AppManagerUnavailable", "create_app_manager"]


def create_app_manager(config: Config, cache: Cache | None = None) -> AppManager:
    """The app manager named by ``config.app_manager.driver``, seeded with the inline apps;
    a database one looks up through ``cache`` when given and ``app_manager.cache.enabled``.
    Database drivers import their client package here, so a missing one fails at start-up
    naming the package to install."""
    section = config.app_manager
    seed = section.array.apps
    manager: AppManager
    if section.driver == "memory":
        from .memory import MemoryAppManager

        return MemoryAppManager(seed)
    if section.driver == "mysql":
        from .mysql import MySqlAppManager

        manager = MySqlAppManager(config.database.mysql, seed)
    elif section.driver == "dynamodb":
        from .dynamodb import DynamoDbAppManager

        manager = DynamoDbAppManager(config.database.dynamodb, seed)
    else:
        raise ValueError(f"app_manager.driver: {section.driver!r} is not available in this build")
    if cache is not None and section.cache.enabled:
        from .cached import CachedAppManager

        manager = CachedAppManager(manager, cache, section.cache.ttl)
    return manager
