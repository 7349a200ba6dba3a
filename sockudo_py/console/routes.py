"""``Console``: the console's page, its data endpoints, its event creator and its live log.

Routes (with ``console.enabled``; otherwise each is a 404, the WebSocket's upgrade too, by
``disabled_routes``):

* ``GET /console``, ``/console/console.js``, ``/console/console.css``: the page (no data).
* ``GET /console/api/apps``: the apps the token opens (id, key, enabled; never a secret).
* ``GET /console/api/apps/{id}/stats``: connections (cluster-wide), nodes, message rates.
* ``GET /console/api/apps/{id}/channels``: occupied channels with subscriber (and, for
  presence, user) counts, cluster-wide.
* ``GET /console/api/apps/{id}/channels/{channel}/members``: a presence channel's members.
* ``POST /console/api/apps/{id}/events``: publish, as ``POST /apps/{id}/events`` does.
* ``WS /console/ws``: the live log (``stream``).

Every ``/console/api`` call needs ``Authorization: Bearer <token>`` (``ConsoleAuth``).
"""

from __future__ import annotations

import time
from importlib import resources
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from ..adapters import Adapter
from ..app_manager import AppManager
from ..config import App, ConsoleConfig
from ..http_api import HttpApi
from ..http_api.auth import read_body
from ..http_api.errors import ApiError, bad_request
from ..http_api.routes import cluster_response
from ..protocol.channels import ChannelKind, channel_type, validate_channel_name
from ..protocol.errors import ProtocolError
from .auth import ConsoleAuth, bearer
from .cluster import ConsoleCluster, Totals
from .stream import LogStream
from .tap import Tap

DENIAL_EXTENSION = "websocket.http.response"
"""The ASGI extension that lets the app answer an upgrade with an HTTP response."""

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the address may hold ?token= until the script drops it
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}
STATIC = {
    "": ("index.html", "text/html; charset=utf-8"),
    "console.js": ("console.js", "text/javascript; charset=utf-8"),
    "console.css": ("console.css", "text/css; charset=utf-8"),
}
"""Path under ``/console/`` -> (file in ``static/``, its content type)."""


class Console:
    """The console of one node over its drivers (see the module doc).

    Contract: every data endpoint and action authenticates first (401 ``{"error"}`` for a
    missing or wrong token, as ``ConsoleAuth``); counts and members are the adapter's
    cluster-wide answers (``partial`` when a node did not answer); events are published by
    ``HttpApi.trigger``, the code of ``POST /apps/{id}/events``. ``start``/``stop`` run the
    cluster side (``ConsoleCluster``) with the server.
    """

    def __init__(
        self,
        config: ConsoleConfig,
        app_manager: AppManager,
        adapter: Adapter,
        http_api: HttpApi,
        tap: Tap,
        totals: Totals,
    ) -> None:
        self.auth = ConsoleAuth(config.admin_token, app_manager)
        self.adapter = adapter
        self.http_api = http_api
        self.tap = tap
        self.cluster = ConsoleCluster(adapter, tap, totals)
        self.stream = LogStream(self.auth, tap, self.cluster.changed)
        self._files = {path: _static(name) for path, (name, _) in STATIC.items()}

    async def start(self) -> None:
        await self.cluster.start()

    async def stop(self) -> None:
        await self.cluster.stop()

    def routes(self) -> list[BaseRoute]:
        api = "/console/api/apps"
        return [
            Route("/console", self.page, methods=["GET"]),
            Route("/console/{file:str}", self.page, methods=["GET"]),
            Route(api, self.apps, methods=["GET"]),
            Route(api + "/{app_id}/stats", self.stats, methods=["GET"]),
            Route(api + "/{app_id}/channels", self.channels, methods=["GET"]),
            Route(api + "/{app_id}/channels/{channel}/members", self.members, methods=["GET"]),
            Route(api + "/{app_id}/events", self.events, methods=["POST"]),
            WebSocketRoute("/console/ws", self.stream.serve),
        ]

    # --- the page -----------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        path = request.path_params.get("file", "")
        if path not in STATIC:
            raise ApiError(404, "not_found", f"No route for GET {request.url.path}")
        return Response(self._files[path], media_type=STATIC[path][1], headers=PAGE_HEADERS)

    # --- data ---------------------------------------------------------------------------

    async def _app(self, request: Request) -> App:
        return await self.auth.app(bearer(request), request.path_params["app_id"])

    async def apps(self, request: Request) -> Response:
        apps = await self.auth.apps(bearer(request))
        return JSONResponse(
            {
                "node": self.adapter.node_id,
                "apps": [{"id": app.id, "key": app.key, "enabled": app.enabled} for app in apps],
            }
        )

    async def stats(self, request: Request) -> Response:
        app = await self._app(request)
        answer = await self.adapter.sockets_count(app.id)
        received, sent, rate_nodes = self.cluster.rates(app.id)
        body = {
            "app_id": app.id,
            "node": self.adapter.node_id,
            "connections": answer.value,
            "nodes": answer.nodes,
            "missing_nodes": answer.missing,
            "messages_per_second": {"received": round(received, 2), "sent": round(sent, 2)},
            "rate_nodes": rate_nodes,
        }
        return cluster_response(body, [answer])

    async def channels(self, request: Request) -> Response:
        app = await self._app(request)
        answer = await self.adapter.channels(app.id)
        channels: list[dict[str, Any]] = []
        for name, count in sorted(answer.value.items()):
            if count <= 0:
                continue
            entry: dict[str, Any] = {"name": name, "subscription_count": count}
            if _is_presence(name):
                entry["user_count"] = len(await self.adapter.channel_members(app.id, name))
            channels.append(entry)
        return cluster_response({"channels": channels}, [answer])

    async def members(self, request: Request) -> Response:
        app = await self._app(request)
        channel = request.path_params["channel"]
        try:
            validate_channel_name(channel, app.max_channel_name_length)
        except ProtocolError as exc:
            raise bad_request(exc.message) from None
        if not _is_presence(channel):
            raise bad_request("Members are only available on presence channels")
        members = await self.adapter.channel_members(app.id, channel)
        return JSONResponse(
            {
                "channel": channel,
                "members": [{"id": key, "info": member.info} for key, member in members.items()],
            }
        )

    # --- actions ------------------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        """The event creator: a body of ``POST /apps/{id}/events`` (``name``, ``data``,
        ``channel`` or ``channels``, ``socket_id``, ``info``), published the same way."""
        started = time.monotonic()
        app = await self._app(request)
        if not app.enabled:  # as the HTTP API refuses it
            raise ApiError(403, "forbidden", f"App {app.id} is disabled")
        try:
            body = orjson.loads(await read_body(request, self.http_api.body_limit))
        except orjson.JSONDecodeError:
            raise bad_request("The body is not valid JSON") from None
        return await self.http_api.trigger(request, app, body, started, via="console")


def disabled_routes() -> list[BaseRoute]:
    """The console's routes when it is disabled: its WebSocket answers the upgrade with 404
    (without a route it would be 403), as its HTTP paths do."""
    return [WebSocketRoute("/console/ws", _websocket_not_found)]


async def _websocket_not_found(websocket: WebSocket) -> None:
    if DENIAL_EXTENSION in websocket.scope.get("extensions", {}):
        error = ApiError(404, "not_found", "The console is disabled")
        await websocket.send_denial_response(error.response())
    else:
        await websocket.close(1008)


def _static(name: str) -> bytes:
    return (resources.files(__package__) / "static" / name).read_bytes()


def _is_presence(channel: str) -> bool:
    return channel_type(channel).kind is ChannelKind.PRESENCE
