"""An asyncio Pusher client (protocol 7) for Python services, scripts and tests.

Works against any Pusher-protocol server: Pusher Channels, soketi, Sockudo, Laravel Reverb
and sockudo-py. ``private-encrypted-`` channels need PyNaCl (``pip install
'sockudo-py[client]'``). See :class:`PusherClient`; scripts without asyncio can use
:class:`sockudo_py.client.sync.SyncPusherClient`.
"""

from .auth import ChannelAuthorizer, EndpointAuthorizer, UserAuthenticator
from .channel import Channel, EncryptedChannel, Member, PresenceChannel
from .client import ConnectionState, PusherClient
from .encryption import DecryptionError
from .errors import (
    AuthorizationError,
    ClientClosedError,
    ConnectionRefusedByServer,
    PusherClientError,
    SigninError,
    SubscriptionError,
)
from .events import Event, EventStream
from .reconnect import CloseAction, ReconnectPolicy, close_action
from .user import User, Watchlist

__all__ = [
    "AuthorizationError",
    "Channel",
    "ChannelAuthorizer",
    "ClientClosedError",
    "CloseAction",
    "ConnectionRefusedByServer",
    "ConnectionState",
    "DecryptionError",
    "EncryptedChannel",
    "EndpointAuthorizer",
    "Event",
    "EventStream",
    "Member",
    "PresenceChannel",
    "PusherClient",
    "PusherClientError",
    "ReconnectPolicy",
    "SigninError",
    "SubscriptionError",
    "User",
    "UserAuthenticator",
    "Watchlist",
    "close_action",
]
