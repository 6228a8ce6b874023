"""trisails: Sails-style realtime apps in Python, the Trio way.

This module is the whole public API; everything else is internal and may change. The sans-I/O codecs
are documented separately in :mod:`trisails.protocol`.
"""

from ._app import App as App
from ._config import BlueprintSettings as BlueprintSettings
from ._config import DatastoreSettings as DatastoreSettings
from ._current import NoAppRunning as NoAppRunning
from ._current import sails as sails
from ._config import HttpSettings as HttpSettings
from ._config import LogSettings as LogSettings
from ._config import SecuritySettings as SecuritySettings
from ._config import SessionSettings as SessionSettings
from ._config import Settings as Settings
from ._config import SocketSettings as SocketSettings
from ._config import ViewSettings as ViewSettings
from ._errors import AckTimeout as AckTimeout
from ._errors import AppLoadError as AppLoadError
from ._errors import ConfigError as ConfigError
from ._errors import ConnectionRefused as ConnectionRefused
from ._errors import DisconnectedError as DisconnectedError
from ._errors import EngineIOError as EngineIOError
from ._errors import PresenceLimitReached as PresenceLimitReached
from ._errors import ProtocolError as ProtocolError
from ._errors import RoomLimitReached as RoomLimitReached
from ._errors import SocketIOError as SocketIOError
from ._errors import TrisailsError as TrisailsError
from .orm.binding import ValidationError as ValidationError
from .orm.criteria import UsageError as UsageError
from .orm.model import Model as Model
from .orm.model import ModelError as ModelError
from .orm.model import Optional as Optional
from .orm.model import PrimaryKey as PrimaryKey
from .orm.model import Required as Required
from .orm.model import Set as Set
from .realtime.connection import Handshake as Handshake
from .realtime.presence import Presence as Presence
from .realtime.server import Ack as Ack
from .realtime.server import BroadcastOperator as BroadcastOperator
from .realtime.server import BroadcastReply as BroadcastReply
from .realtime.server import Namespace as Namespace
from .realtime.server import RealtimeServer as RealtimeServer
from .realtime.server import RemoteSocket as RemoteSocket
from .realtime.server import ServerSideReply as ServerSideReply
from .realtime.server import Socket as Socket
from .realtime.server import SocketHandshake as SocketHandshake
from .sockets import NoSuchSocket as NoSuchSocket
from .sockets import Sockets as Sockets
from .web.request import Request as Request
from .web.request import Response as Response
from .web.views import ViewNotFound as ViewNotFound

__version__ = "0.1.0"

__all__ = [
    "Ack",
    "AckTimeout",
    "App",
    "AppLoadError",
    "BlueprintSettings",
    "BroadcastOperator",
    "BroadcastReply",
    "ConfigError",
    "ConnectionRefused",
    "DatastoreSettings",
    "DisconnectedError",
    "EngineIOError",
    "Handshake",
    "HttpSettings",
    "LogSettings",
    "Model",
    "ModelError",
    "Namespace",
    "NoAppRunning",
    "NoSuchSocket",
    "Presence",
    "PresenceLimitReached",
    "Optional",
    "PrimaryKey",
    "ProtocolError",
    "RealtimeServer",
    "RemoteSocket",
    "Required",
    "Request",
    "Response",
    "RoomLimitReached",
    "SecuritySettings",
    "ServerSideReply",
    "SessionSettings",
    "Set",
    "Settings",
    "Socket",
    "SocketHandshake",
    "SocketIOError",
    "SocketSettings",
    "Sockets",
    "TrisailsError",
    "UsageError",
    "ValidationError",
    "ViewNotFound",
    "ViewSettings",
    "sails",
]
