"""HTTP API errors: a real status plus ``{"error", "code", "status"}``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response


class ApiError(Exception):
    """An HTTP API failure: ``status`` (400, 401, 403, 404, 413, ...), a snake_case ``code``
    and a human ``message``; ``headers`` go on the response (``Retry-After`` ...)."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers

    def response(self) -> JSONResponse:
        body = {"error": self.message, "code": self.code, "status": self.status}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def bad_request(message: str, code: str = "invalid_input") -> ApiError:
    return ApiError(400, code, message)


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def not_found_handler(request: Request, exc: Exception) -> Response:
    return ApiError(
        404, "not_found", f"No route for {request.method} {request.url.path}"
    ).response()
