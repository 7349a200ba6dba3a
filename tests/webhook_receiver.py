"""A real HTTP server that receives webhooks in tests, with scripted answers.

``WebhookReceiver`` listens on 127.0.0.1 (a free port, or a given one) in a thread, records
every request (path, headers, exact body, arrival time) and answers each path from its
script: ``receiver.script("/hook", [500, 200])`` answers 500 once, then 200 (the last status
repeats); an entry ``(429, {"Retry-After": "2"})`` adds headers to the answer. ``stop()``
closes the port (connections are refused: the endpoint is "down");
``start()`` opens it again on the same port.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = int | tuple[int, dict[str, str]]

EVENT_TYPES = [
    "channel_occupied",
    "channel_vacated",
    "member_added",
    "member_removed",
    "client_event",
]
"""The transitions and client events: what the end-to-end webhook tests subscribe to."""


@dataclass(frozen=True)
class Received:
    """One request as it arrived, and the status it was answered with."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.json["events"]
        return events

    def signed_by(self, secret: str) -> bool:
        expected = hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.headers.get("x-pusher-signature", ""))


class WebhookReceiver:
    """See the module doc. Thread-safe; use as a context manager or start/stop it."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.requests: list[Received] = []
        self._scripts: dict[str, list[Answer]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, statuses: list[Answer]) -> None:
        """Answer the next requests to ``path`` with ``statuses`` in order (the last one
        repeats)."""
        with self._lock:
            self._scripts[path] = list(statuses)

    def _answer(self, path: str) -> tuple[int, dict[str, str]]:
        with self._lock:
            script = self._scripts.get(path)
            answer = (script.pop(0) if len(script) > 1 else script[0]) if script else 200
        return answer if isinstance(answer, tuple) else (answer, {})

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                status, extra = receiver._answer(self.path)
                headers = {name.lower(): value for name, value in self.headers.items()}
                with receiver._lock:
                    receiver.requests.append(
                        Received(self.path, headers, body, time.time(), status)
                    )
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- reading what arrived ---------------------------------------------------------------

    def received(self, path: str | None = None, status: int | None = None) -> list[Received]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (path is None or r.path == path) and (status is None or r.status == status)
            ]

    def events(self, path: str | None = None) -> list[dict[str, Any]]:
        """Every event of every request answered 2xx, in arrival order."""
        return [event for r in self.received(path) if 200 <= r.status < 300 for event in r.events]

    async def wait_for(
        self, condition: Callable[[], bool], timeout: float = 10.0, what: str = "webhooks"
    ) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; got {self.requests!r}")
            await asyncio.sleep(0.05)

    async def wait_events(
        self, count: int, path: str | None = None, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Wait until at least ``count`` events were delivered (2xx) to ``path``."""
        await self.wait_for(
            lambda: len(self.events(path)) >= count, timeout, f"{count} webhook events"
        )
        return self.events(path)
