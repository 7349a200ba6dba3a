"""Channel authorization and user authentication: a callback or an HTTP endpoint.

A channel authorizer is ``(socket_id, channel_name) -> dict`` (sync or ``async``) returning
what a Pusher auth endpoint returns: ``{"auth": "<key>:<signature>"}`` plus
``channel_data`` (presence) and ``shared_secret`` (private-encrypted). A user authenticator is
``(socket_id) -> dict`` returning ``{"auth": ..., "user_data": "<json>"}``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from .errors import AuthorizationError

ChannelAuthorizer = Callable[[str, str], Awaitable[dict[str, Any]] | dict[str, Any]]
UserAuthenticator = Callable[[str], Awaitable[dict[str, Any]] | dict[str, Any]]


async def call_auth(func: Callable[..., Any], *args: str) -> dict[str, Any]:
    """Call an authorizer (sync or async) and check it returned a dict with ``auth``."""
    try:
        result = func(*args)
        if inspect.isawaitable(result):
            result = await result
    except AuthorizationError:
        raise
    except Exception as exc:
        raise AuthorizationError(f"the authorizer raised {exc!r}") from exc
    if not isinstance(result, dict) or not isinstance(result.get("auth"), str):
        raise AuthorizationError(f"the authorizer must return a dict with 'auth', got {result!r}")
    return result


class EndpointAuthorizer:
    """POSTs ``form`` fields form-encoded to ``url`` (as pusher-js does) with ``headers``
    and returns the JSON object the endpoint answers. A status other than 200, or an answer
    that is not a JSON object, raises :class:`AuthorizationError`."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        trust_env: bool = True,
    ) -> None:
        self.url = url
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.trust_env = trust_env

    async def post(self, form: Mapping[str, str]) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=self.timeout, trust_env=self.trust_env) as http:
                resp = await http.post(self.url, data=dict(form), headers=self.headers)
        except httpx.HTTPError as exc:
            raise AuthorizationError(f"auth endpoint {self.url}: {exc!r}") from exc
        if resp.status_code != 200:
            raise AuthorizationError(
                f"auth endpoint {self.url} answered {resp.status_code}: {resp.text[:200]}"
            )
        try:
            body = resp.json()
        except ValueError as exc:
            raise AuthorizationError(f"auth endpoint {self.url} did not answer JSON") from exc
        if not isinstance(body, dict):
            raise AuthorizationError(f"auth endpoint {self.url} did not answer a JSON object")
        return body

    async def authorize_channel(self, socket_id: str, channel_name: str) -> dict[str, Any]:
        return await self.post({"socket_id": socket_id, "channel_name": channel_name})

    async def authenticate_user(self, socket_id: str) -> dict[str, Any]:
        return await self.post({"socket_id": socket_id})
