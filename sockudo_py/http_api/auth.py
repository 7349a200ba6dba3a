"""Authenticating HTTP API requests: the app in the path, the key, the signature."""

from __future__ import annotations

import time

from starlette.requests import Request

from ..app_manager import AppManager, AppManagerUnavailable
from ..config import App
from ..protocol.errors import ProtocolError
from ..protocol.signatures import verify_api_request
from .errors import ApiError


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 past ``limit`` bytes (checked while reading)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"Request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"Request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def authenticate(request: Request, app_manager: AppManager, body: bytes) -> App:
    """The app of a signed request to ``/apps/{app_id}/...`` (or, for a route without an app
    id, of its ``auth_key``); raises ``ApiError`` otherwise: 404 unknown app, 401 wrong key
    or signature, 403 disabled app."""
    params = dict(request.query_params)
    app_id = request.path_params.get("app_id")
    try:
        if app_id is None:
            app = await app_manager.find_by_key(params.get("auth_key", ""))
            app_id = app.id if app is not None else params.get("auth_key", "")
        else:
            app = await app_manager.find_by_id(app_id)
    except AppManagerUnavailable as exc:
        reason = f"The app store is unavailable: {exc}"
        raise ApiError(503, "app_store_unavailable", reason) from None
    if app is None:
        raise ApiError(404, "app_not_found", f"App {app_id} does not exist")
    if not params:
        raise ApiError(401, "auth_failed", "The request is not signed (no auth_* parameters)")
    if params.get("auth_key") != app.key:
        raise ApiError(401, "auth_failed", "auth_key does not belong to this app")
    raw_path = request.scope.get("raw_path")
    paths = [request.url.path]
    if raw_path:
        paths.append(raw_path.decode("latin-1"))
    failure: ProtocolError | None = None
    for path in paths:
        try:
            verify_api_request(app.secret, request.method, path, params, body, time.time())
            failure = None
            break
        except ProtocolError as exc:
            failure = failure or exc
    if failure is not None:
        raise ApiError(401, "auth_failed", failure.message)
    if not app.enabled:
        raise ApiError(403, "forbidden", f"App {app_id} is disabled")
    return app
