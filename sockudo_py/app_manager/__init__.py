"""App managers: where the tenants come from."""

from __future__ import annotations

from ..config import AppManagerConfig
from .base import AppManager

__all__ = ["AppManager", "create_app_manager"]


def create_app_manager(config: AppManagerConfig) -> AppManager:
    """The app manager named by ``config.driver``."""
    if config.driver == "memory":
        from .memory import MemoryAppManager

        return MemoryAppManager(config.array.apps)
    raise ValueError(f"app_manager.driver: {config.driver!r} is not available in this build")
