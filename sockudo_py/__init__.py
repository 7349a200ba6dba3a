"""sockudo-py: a Pusher-protocol-compatible WebSocket server."""

__version__ = "0.1.0"
