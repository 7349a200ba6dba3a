"""The HTTP API: ``/apps/{app_id}/...`` and the health routes."""

from .errors import ApiError
from .routes import HttpApi

__all__ = ["ApiError", "HttpApi"]
