"""The exceptions ``sockudo_py.client`` raises."""

from __future__ import annotations


class PusherClientError(Exception):
    """Base class of every error the client raises."""


class ConnectionRefusedByServer(PusherClientError):
    """The server closed the connection with a 4000-4099 code: the client will not reconnect.

    ``code`` is the close code (e.g. 4001 unknown app key), ``reason`` what the server said.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"connection refused by the server ({code}): {reason}")
        self.code = code
        self.reason = reason


class ClientClosedError(PusherClientError):
    """The client was closed (or gave up reconnecting) while an operation was waiting."""


class AuthorizationError(PusherClientError):
    """Channel authorization or user authentication could not be obtained."""


class SubscriptionError(PusherClientError):
    """The server refused a subscription (``pusher:subscription_error``) or it could not be
    authorized. ``type`` is ``AuthError``, ``LimitReached``, ``InvalidChannel``... and
    ``status`` the HTTP-like status the server gave (0 when unknown)."""

    def __init__(self, channel: str, type: str, error: str, status: int = 0) -> None:
        super().__init__(f"subscription to {channel!r} failed ({type}, {status}): {error}")
        self.channel = channel
        self.type = type
        self.error = error
        self.status = status


class SigninError(PusherClientError):
    """``client.signin()`` failed: no user authentication, or the server refused it."""
