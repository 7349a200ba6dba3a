"""The WebSocket side: ``/app/{key}``."""

from .endpoint import PusherEndpoint
from .handler import PusherHandler

__all__ = ["PusherEndpoint", "PusherHandler"]
