"""App managers: where the tenants come from."""

from __future__ import annotations

from ..config import Config
from .base import AppManager, AppManagerUnavailable

__all__ = ["AppManager", "AppManagerUnavailable", "create_app_manager"]


def create_app_manager(config: Config) -> AppManager:
    """The app manager named by ``config.app_manager.driver``, seeded with the inline apps.
    Database drivers import their client package here, so a missing one fails at start-up
    naming the package to install."""
    section = config.app_manager
    seed = section.array.apps
    if section.driver == "memory":
        from .memory import MemoryAppManager

        return MemoryAppManager(seed)
    raise ValueError(f"app_manager.driver: {section.driver!r} is not available in this build")
