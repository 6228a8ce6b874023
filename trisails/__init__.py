"""trisails: Sails-style realtime apps in Python, the Trio way.

This module is the whole public API; everything else is internal and may change. The sans-I/O codecs
are documented separately in :mod:`trisails.protocol`.
"""

from ._app import App as App
from ._config import HttpSettings as HttpSettings
from ._config import Settings as Settings
from ._config import SocketSettings as SocketSettings
from ._errors import AckTimeout as AckTimeout
from ._errors import AppLoadError as AppLoadError
from ._errors import ConfigError as ConfigError
from ._errors import ConnectionRefused as ConnectionRefused
from ._errors import DisconnectedError as DisconnectedError
from ._errors import EngineIOError as EngineIOError
from ._errors import ProtocolError as ProtocolError
from ._errors import SocketIOError as SocketIOError
from ._errors import TrisailsError as TrisailsError
from .realtime.engine import Handshake as Handshake
from .realtime.server import BroadcastOperator as BroadcastOperator
from .realtime.server import Namespace as Namespace
from .realtime.server import RealtimeServer as RealtimeServer
from .realtime.server import Socket as Socket
from .realtime.server import SocketHandshake as SocketHandshake

__version__ = "0.1.0"

__all__ = [
    "AckTimeout",
    "App",
    "AppLoadError",
    "BroadcastOperator",
    "ConfigError",
    "ConnectionRefused",
    "DisconnectedError",
    "EngineIOError",
    "Handshake",
    "HttpSettings",
    "Namespace",
    "ProtocolError",
    "RealtimeServer",
    "Settings",
    "Socket",
    "SocketHandshake",
    "SocketIOError",
    "SocketSettings",
    "TrisailsError",
]
