"""WebSocket-level ping and pong frames count as activity; a socket can be dropped at once.

ASGI does not pass control frames to the application, so the uvicorn protocol is extended:
when a Ping or Pong frame arrives, the ``Connection`` stored in the ASGI scope (under
``SCOPE_KEY``) is marked active, exactly as a ``pusher:ping`` would. The protocol also puts
its transport's ``abort`` in the scope (under ``ABORT_KEY``): the way to drop a peer that
does not read, whose close frame would never get out (ASGI has no such message).

The same class carries the permessage-deflate offer answer (``deflate``, set by
``ws.compression.websocket_protocol`` from ``websocket.compression``), so uvicorn's own
``ws_per_message_deflate`` (on by default, with fixed parameters) plays no part.
"""

from __future__ import annotations

from typing import Any, ClassVar

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

SCOPE_KEY = "sockudo_py.connection"
ABORT_KEY = "sockudo_py.abort"


class ActivityAwareWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets (sans-I/O) protocol, marking the connection active on control
    frames and negotiating permessage-deflate only as ``deflate`` says."""

    deflate: ClassVar[ServerPerMessageDeflateFactory | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn.available_extensions = [self.deflate] if self.deflate is not None else []

    def _mark_active(self) -> None:
        scope: dict[str, Any] | None = getattr(self, "scope", None)
        conn = scope.get(SCOPE_KEY) if scope is not None else None
        if conn is not None:
            conn.mark_active()

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope: dict[str, Any] | None = getattr(self, "scope", None)
        if scope is not None:
            scope[ABORT_KEY] = self.transport.abort

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            # an upgrade answered with an HTTP response (503 while draining) is complete:
            # uvicorn would otherwise log "ASGI callable returned without completing handshake"
            self.handshake_complete = True

    def handle_ping(self) -> None:
        self._mark_active()
        super().handle_ping()

    def handle_pong(self, event: Any) -> None:
        self._mark_active()
        super().handle_pong(event)
