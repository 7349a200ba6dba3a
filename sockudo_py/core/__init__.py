"""The per-app registry of what lives on this node: sockets, channels, presence, users."""

from .namespace import Namespace, Socket

__all__ = ["Namespace", "Socket"]
