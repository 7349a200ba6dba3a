"""``LogStream``: the console's live log over its own WebSocket, ``/console/ws``.

The page's first message authenticates and picks the app:
``{"type": "auth", "token": "<admin token or app secret>", "app_id": "<id>"}`` (the token
never travels in a URL). The server answers ``{"type": "ready", "node", "app_id", "rate",
"buffer"}`` and from then on sends ``{"type": "entries", "entries": [...], "dropped": n}``
at most every ``BATCH_SECONDS`` while there is something to say: ``dropped`` counts the
entries lost since the last message (sampled away under load, or not taken in time). A
refusal is ``{"type": "error", "status", "error"}`` and a close with 4000 + the status
(4400 bad first message, 4401 wrong token, 4404 unknown app, 4503 app store down).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..config import App
from ..http_api.errors import ApiError
from .auth import ConsoleAuth
from .tap import Subscriber, Tap

AUTH_SECONDS = 10.0
"""How long the page has to send its first message."""
BATCH_SECONDS = 0.1
"""Entries are sent in one message per this many seconds at most."""
IDLE_SECONDS = 1.0
"""Drops are reported within this many seconds even when no entry comes."""


class LogStream:
    """Serves ``/console/ws`` (see the module doc): one ``Tap`` subscriber per open page,
    removed when the page goes; ``changed`` is called whenever the set of watched apps may
    have changed (the cluster is told)."""

    def __init__(self, auth: ConsoleAuth, tap: Tap, changed: Callable[[], None]) -> None:
        self.auth = auth
        self.tap = tap
        self.changed = changed

    async def serve(self, websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            app = await self._authenticate(websocket)
        except ApiError as refusal:
            await _refuse(websocket, refusal)
            return
        except (WebSocketDisconnect, OSError, RuntimeError):
            return
        subscriber = self.tap.subscribe(app.id)
        self.changed()
        reader = asyncio.get_running_loop().create_task(_read_until_closed(websocket, subscriber))
        try:
            await _send(
                websocket,
                {
                    "type": "ready",
                    "node": self.tap.node_id,
                    "app_id": app.id,
                    "rate": self.tap.rate,
                    "buffer": self.tap.buffer,
                },
            )
            await self._pump(websocket, subscriber, reader)
        except (WebSocketDisconnect, OSError, RuntimeError):
            pass  # the page went away
        finally:
            reader.cancel()
            self.tap.unsubscribe(subscriber)
            self.changed()

    async def _authenticate(self, websocket: WebSocket) -> App:
        try:
            message = orjson.loads(await asyncio.wait_for(websocket.receive_text(), AUTH_SECONDS))
        except TimeoutError:
            raise ApiError(400, "invalid_input", "No auth message in time") from None
        except (orjson.JSONDecodeError, KeyError):
            raise ApiError(400, "invalid_input", "The first message must be JSON") from None
        if not isinstance(message, dict) or message.get("type") != "auth":
            raise ApiError(400, "invalid_input", 'The first message must be {"type": "auth"}')
        token, app_id = message.get("token"), message.get("app_id")
        if not isinstance(app_id, str):
            raise ApiError(400, "invalid_input", "app_id is required")
        return await self.auth.app(token if isinstance(token, str) and token else None, app_id)

    async def _pump(
        self, websocket: WebSocket, subscriber: Subscriber, reader: asyncio.Task[None]
    ) -> None:
        while not reader.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(subscriber.wake.wait(), IDLE_SECONDS)
            if reader.done():
                return
            entries, dropped = self.tap.take(subscriber)
            if entries or dropped:
                await _send(websocket, {"type": "entries", "entries": entries, "dropped": dropped})
            await asyncio.sleep(BATCH_SECONDS)


async def _read_until_closed(websocket: WebSocket, subscriber: Subscriber) -> None:
    """Read (and ignore) what the page sends until it closes; then wake the pump."""
    try:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
    except (OSError, RuntimeError):
        pass
    finally:
        subscriber.wake.set()


async def _send(websocket: WebSocket, message: dict[str, Any]) -> None:
    await websocket.send_text(orjson.dumps(message).decode())


async def _refuse(websocket: WebSocket, refusal: ApiError) -> None:
    with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
        await _send(
            websocket, {"type": "error", "status": refusal.status, "error": refusal.message}
        )
        await websocket.close(4000 + refusal.status, refusal.message[:120])
