"""The Pusher protocol as pure functions: frames, channel names, signatures, error codes.

Nothing here does I/O or imports the rest of ``sockudo_py``; every parser raises only
``ProtocolError``.
"""

from .errors import ErrorCode, ProtocolError

__all__ = ["ErrorCode", "ProtocolError"]
