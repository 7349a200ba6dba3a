"""Who may use the console: the admin token opens every app, an app's secret that app."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import HTTPConnection

from ..app_manager import AppManager, AppManagerUnavailable
from ..config import App
from ..http_api.errors import ApiError

NO_TOKEN = "The console needs 'Authorization: Bearer <admin token or app secret>'"
WRONG_TOKEN = "Wrong token"

T = TypeVar("T")


def bearer(connection: HTTPConnection) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if any."""
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def same(token: str, expected: str) -> bool:
    """Whether ``token`` is ``expected``, in constant time."""
    return hmac.compare_digest(token.encode(), expected.encode())


class ConsoleAuth:
    """Checks console tokens against ``admin_token`` (None: no admin, only app secrets work)
    and the apps' secrets, in constant time.

    Every refusal is :class:`ApiError` 401 ``unauthorized``, also for an app the token does
    not open, whether or not it exists (only the admin is told 404 for an unknown app);
    503 when the app store cannot answer.
    """

    def __init__(self, admin_token: str | None, app_manager: AppManager) -> None:
        self.admin_token = admin_token or None
        self.app_manager = app_manager

    def is_admin(self, token: str) -> bool:
        return self.admin_token is not None and same(token, self.admin_token)

    async def apps(self, token: str | None) -> list[App]:
        """The apps ``token`` opens (at least one), in the store's order."""
        if token is None:
            raise ApiError(401, "unauthorized", NO_TOKEN)
        apps = await self._store(self.app_manager.all_apps())
        if not self.is_admin(token):
            apps = [app for app in apps if same(token, app.secret)]
        if not apps and not self.is_admin(token):
            raise ApiError(401, "unauthorized", WRONG_TOKEN)
        return apps

    async def app(self, token: str | None, app_id: str) -> App:
        """App ``app_id``, if ``token`` opens it."""
        if token is None:
            raise ApiError(401, "unauthorized", NO_TOKEN)
        app = await self._store(self.app_manager.find_by_id(app_id))
        if self.is_admin(token):
            if app is None:
                raise ApiError(404, "app_not_found", f"App {app_id} does not exist")
            return app
        if app is None or not same(token, app.secret):
            raise ApiError(401, "unauthorized", WRONG_TOKEN)
        return app

    @staticmethod
    async def _store(lookup: Awaitable[T]) -> T:
        try:
            return await lookup
        except AppManagerUnavailable as exc:
            raise ApiError(
                503, "app_store_unavailable", f"The app store is unavailable: {exc}"
            ) from None
