"""The signed-in user: ``client.signin()`` fills it; ``client.user.watchlist`` reports who of
the user's watchlist comes online or goes offline."""

from __future__ import annotations

import asyncio
from typing import Any

from ..protocol.channels import SERVER_TO_USER_PREFIX
from .events import Emitter, Event, decode_data


class Watchlist(Emitter):
    """Watchlist events: ``online`` and ``offline``, each with ``data``
    ``{"name": ..., "user_ids": [...]}`` (bind with ``@client.user.watchlist.on("online")``)."""

    def _handle(self, frame: dict[str, Any]) -> None:
        data = decode_data(frame.get("data"))
        events = data.get("events") if isinstance(data, dict) else None
        for item in events or []:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                self.emit(Event(item["name"], None, item, raw=frame))


class User(Emitter):
    """The user this connection is signed in as. ``id`` and ``user_data`` are set once the
    server confirmed the sign-in (``signed_in``); events sent to the user
    (``#server-to-user-<id>``) are emitted on this object itself."""

    def __init__(self) -> None:
        super().__init__()
        self.id: str | None = None
        self.user_data: dict[str, Any] = {}
        self.signed_in = False
        self.watchlist = Watchlist()
        self._result: asyncio.Future[None] | None = None

    @property
    def channel_name(self) -> str | None:
        return None if self.id is None else f"{SERVER_TO_USER_PREFIX}{self.id}"

    def _begin(self) -> asyncio.Future[None]:
        self.signed_in = False
        if self._result is None or self._result.done():
            self._result = asyncio.get_running_loop().create_future()
            self._result.add_done_callback(lambda f: f.cancelled() or f.exception())
        return self._result

    def _succeeded(self, user_data: Any) -> None:
        data = decode_data(user_data)
        self.user_data = data if isinstance(data, dict) else {}
        user_id = self.user_data.get("id")
        self.id = None if user_id is None else str(user_id)
        self.signed_in = True

    def _ready(self) -> None:
        """The user's channel is subscribed (or refused): ``signin()`` returns."""
        if self._result is not None and not self._result.done():
            self._result.set_result(None)

    def _failed(self, error: BaseException) -> None:
        if self._result is not None and not self._result.done():
            self._result.set_exception(error)
