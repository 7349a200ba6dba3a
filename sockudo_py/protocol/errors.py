"""Pusher error and close codes, and the one exception type ``protocol`` raises."""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """Codes sent in ``pusher:error`` frames and as WebSocket close codes.

    4000-4099: the client must not reconnect as is; 4100-4199: reconnect with back-off;
    4200-4299: reconnect at once; 4300-4399: errors that do not close the socket.
    """

    INVALID_MESSAGE = 4000
    APP_NOT_FOUND = 4001
    APP_DISABLED = 4003
    APP_OVER_QUOTA = 4004
    UNAUTHORIZED = 4009
    OVER_CAPACITY = 4100
    RECONNECT = 4200
    PONG_NOT_RECEIVED = 4201
    CHANNEL_ERROR = 4300
    CLIENT_EVENT_REJECTED = 4301


class ProtocolError(Exception):
    """Bad input from a peer: carries the Pusher ``code`` and a human ``message``.

    Everything in ``sockudo_py.protocol`` that rejects input raises this and nothing else.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ProtocolError({self.code}, {self.message!r})"
