"""WebSocket-level ping and pong frames count as activity.

ASGI does not pass control frames to the application, so the uvicorn protocol is extended:
when a Ping or Pong frame arrives, the ``Connection`` stored in the ASGI scope (under
``SCOPE_KEY``) is marked active, exactly as a ``pusher:ping`` would.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

SCOPE_KEY = "sockudo_py.connection"


class ActivityAwareWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets (sans-I/O) protocol, marking the connection active on control
    frames."""

    def _mark_active(self) -> None:
        scope: dict[str, Any] | None = getattr(self, "scope", None)
        conn = scope.get(SCOPE_KEY) if scope is not None else None
        if conn is not None:
            conn.mark_active()

    def handle_ping(self) -> None:
        self._mark_active()
        super().handle_ping()

    def handle_pong(self, event: Any) -> None:
        self._mark_active()
        super().handle_pong(event)
