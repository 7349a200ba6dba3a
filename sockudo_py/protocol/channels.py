"""Channel names: what kind of channel a name denotes and whether it is valid."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import Enum

from .errors import ErrorCode, ProtocolError

SERVER_TO_USER_PREFIX = "#server-to-user-"
_NAME_RE = re.compile(r"[A-Za-z0-9_\-=@,.;]+")
_CACHE_PREFIXES = ("cache-", "private-cache-", "private-encrypted-cache-", "presence-cache-")


class ChannelKind(Enum):
    """How a channel is authorised and what may be sent on it."""

    PUBLIC = "public"
    PRIVATE = "private"
    ENCRYPTED = "private-encrypted"
    PRESENCE = "presence"
    SERVER_TO_USER = "server-to-user"


@dataclass(frozen=True, slots=True)
class ChannelType:
    """The kind of a channel plus whether it keeps its last event (``cache-`` channels)."""

    kind: ChannelKind
    is_cache: bool

    @property
    def requires_auth(self) -> bool:
        return self.kind in (ChannelKind.PRIVATE, ChannelKind.ENCRYPTED, ChannelKind.PRESENCE)

    @property
    def allows_client_events(self) -> bool:
        return self.kind in (ChannelKind.PRIVATE, ChannelKind.PRESENCE)


@functools.lru_cache(maxsize=65536)
def channel_type(name: str) -> ChannelType:
    """Classify ``name`` by its prefix (prefixes are anchored, unlike Sockudo's and soketi's).
    Asked for every client event and publish: the answers for recent names are kept."""
    is_cache = name.startswith(_CACHE_PREFIXES)
    if name.startswith(SERVER_TO_USER_PREFIX):
        kind = ChannelKind.SERVER_TO_USER
    elif name.startswith(("private-encrypted-", "private-encrypted-cache-")):
        kind = ChannelKind.ENCRYPTED
    elif name.startswith("private-"):
        kind = ChannelKind.PRIVATE
    elif name.startswith("presence-"):
        kind = ChannelKind.PRESENCE
    else:
        kind = ChannelKind.PUBLIC
    return ChannelType(kind, is_cache)


def validate_channel_name(name: object, max_length: int = 200) -> str:
    """Return ``name`` if it is a valid channel name, else raise ``ProtocolError`` (4300)."""
    if not isinstance(name, str) or not name:
        raise ProtocolError(ErrorCode.CHANNEL_ERROR, "Channel name must be a non-empty string")
    if len(name) > max_length:
        raise ProtocolError(
            ErrorCode.CHANNEL_ERROR,
            f"Channel name is longer than {max_length} characters",
        )
    body = name[len(SERVER_TO_USER_PREFIX) :] if name.startswith(SERVER_TO_USER_PREFIX) else name
    if not _NAME_RE.fullmatch(body):
        raise ProtocolError(
            ErrorCode.CHANNEL_ERROR,
            "Channel name may only contain letters, digits and _ - = @ , . ;",
        )
    return name


def server_to_user_id(name: str) -> str:
    """The user id of a ``#server-to-user-<id>`` channel."""
    return name[len(SERVER_TO_USER_PREFIX) :]
