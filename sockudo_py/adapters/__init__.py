"""Adapters: delivery to sockets on this node and on every other node."""

from __future__ import annotations

from ..config import AdapterConfig
from .base import Adapter, JoinResult, LeaveResult

__all__ = ["Adapter", "JoinResult", "LeaveResult", "create_adapter"]


def create_adapter(config: AdapterConfig) -> Adapter:
    """The adapter named by ``config.driver``."""
    if config.driver == "local":
        from .local import LocalAdapter

        return LocalAdapter()
    raise ValueError(f"adapter.driver: {config.driver!r} is not available in this build")
