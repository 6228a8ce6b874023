"""Typed settings with documented defaults.

Settings are plain dataclasses grouped by the Sails config file they come from: ``config/sockets.py``
fills :class:`SocketSettings`, ``config/http.py`` fills :class:`HttpSettings`. Every field can also be
passed in code (``App(Settings(sockets=SocketSettings(ping_interval=300)))``). Times on the wire are milliseconds,
as in Sails and Socket.IO, so a value copied from a Sails config means the same thing here.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ._errors import ConfigError

__all__ = [
    "BlueprintSettings",
    "DatastoreSettings",
    "HttpSettings",
    "LogSettings",
    "SecuritySettings",
    "SessionSettings",
    "Settings",
    "SocketSettings",
    "ViewSettings",
]

SlowConsumerPolicy = Literal["disconnect", "drop"]
_ORIGIN = re.compile(r"https?://[^/\s:]+(:[0-9]{1,5})?")


@dataclass
class SocketSettings:
    """How the realtime endpoint behaves (``config/sockets.py``).

    Defaults follow Sails where Sails made a deliberate choice (heartbeat timings) and Socket.IO where
    Sails' choice is unsafe (a 100 MB message limit) or narrower than our clients need (both transports
    are allowed, so `socket.io-client` works over polling as well as websocket).
    """

    path: str = "/socket.io"
    """Where the Engine.IO endpoint is mounted; clients use the same ``path`` option."""
    transports: tuple[str, ...] = ("websocket", "polling")
    """Allowed transports. A client asking for another gets ``400 {"code":0,"message":"Transport unknown"}``."""
    allow_upgrades: bool = True
    """Whether a long-polling client may upgrade to websocket."""
    ping_interval: int = 25000
    """Milliseconds between heartbeats (sent by the client in Engine.IO v3, by the server in v4)."""
    ping_timeout: int = 60000
    """Milliseconds of heartbeat silence, beyond ``ping_interval``, after which a peer is dropped."""
    connect_timeout: int = 45000
    """Milliseconds a client may take to connect to a namespace before it is closed."""
    upgrade_timeout: int = 10000
    """Milliseconds a transport upgrade may take between the probe and the upgrade packet."""
    max_payload: int = 1_000_000
    """Largest message or polling body in bytes; larger ones close the connection (Sails allows 100 MB)."""
    inbound_buffer: int = 256
    """How many received events may wait for one socket's handlers (they run one at a time, in order)
    before the client is disconnected as a flood."""
    outbound_buffer: int = 1024
    """How many messages may wait for one socket's writer before the slow-consumer policy applies."""
    slow_consumer: SlowConsumerPolicy = "disconnect"
    """What to do with a socket whose outbound buffer is full: ``"disconnect"`` it (logged with the
    reason) or ``"drop"`` the message for that socket only. A broadcast never waits for a slow member."""
    ack_timeout: float | None = None
    """Default seconds :meth:`Socket.call` waits for an acknowledgement; ``None`` waits as long as the
    socket lives."""
    only_allow_origins: tuple[str, ...] = ()
    """The pages that may open sockets, as ``scheme://host[:port]`` (``"https://example.com"``). Empty
    allows every origin, which production refuses unless :attr:`before_connect` decides instead, or the
    list is ``("*",)`` on purpose. A client with another ``Origin`` gets 403 at the handshake."""
    allow_missing_origin: bool = True
    """Whether a client that sends no ``Origin`` header (Node, Python, native apps; not a browser page)
    may connect when :attr:`only_allow_origins` is set. ``Origin`` protects browser users from other
    sites' pages; a non-browser client could send any ``Origin`` it likes, so refusing the ones that send
    none adds no protection (Sails' docs and its code disagree here; see docs/security.md)."""
    before_connect: Callable[..., Any] | None = None
    """``before_connect(handshake) -> bool`` (sync or async): runs before a new client gets a session;
    anything but ``True`` (or an exception) refuses it with 403."""
    after_disconnect: Callable[..., Any] | None = None
    """``after_disconnect(session, socket)`` (sync or async): runs when a socket has gone, with its
    session (a dict, saved afterwards if it changed; ``None`` when sessions are off for the socket)."""
    max_connections: int = 20_000
    """Engine.IO sessions this process holds at most; a new client past it gets 503."""
    max_connections_per_ip: int = 1_000
    """Engine.IO sessions one IP address may hold at once; a client past it gets 429 (0: no limit).

    On by default so that one address flooding handshakes cannot take every slot of
    :attr:`max_connections`. 1,000 is more than an office behind one NAT holds (a few hundred people with
    a few tabs each). Behind a reverse proxy every client has the proxy's address: raise it, or set 0 and
    let the proxy limit clients."""
    request_rate: float = 100.0
    """Virtual requests per second one socket may make, on average; past it (and the burst) a request is
    answered ``429 "Too Many Requests"`` without running, and the socket stays connected."""
    request_burst: int = 200
    """How many virtual requests a socket may make at once before ``request_rate`` applies."""
    max_rooms_per_socket: int = 10_000
    """Rooms one socket may be in (its own id room included); joining more raises RoomLimitReached."""
    presence_ttl: float = 15.0
    """Seconds within which the presence entries of a process that died without saying so (SIGKILL, a
    lost machine) disappear from every other process: each process refreshes a liveness key in Redis
    with this lifetime every third of it, and the others reap the entries of one whose key expired."""
    max_presences_per_socket: int = 32
    """Rooms one socket may be tracked in by presence at once; tracking it in more raises
    PresenceLimitReached."""
    max_presence_meta_size: int = 2048
    """Largest presence metadata of one socket in one room, in bytes of JSON; larger raises
    PresenceLimitReached."""
    handshake_timeout: int = 10_000
    """Milliseconds a new connection may take to send its HTTP request head."""
    max_attachments: int = 10
    """Binary attachments one Socket.IO packet may announce (socket.io's own default, 10). They are held
    until the last arrives, and together with the packet they may not pass :attr:`max_payload` bytes;
    past either, the connection is closed as a protocol error."""
    trust_proxy: int = 0
    """How many reverse proxies in front of the app append to ``X-Forwarded-For``: ``0`` (the default)
    reads no proxy header, so a client's address is the TCP peer's; ``1`` (one nginx) takes the last
    entry of the header, ``2`` the one before it, and so on. That address is ``handshake.address``, what
    :attr:`max_connections_per_ip` counts and what a polling session is bound to. Set it only when the
    app's port is reachable through the proxies alone: a client that reaches it directly could write
    any address into the header."""
    private_sid: bool = False
    """Give Engine.IO revision-3 sockets (sails.io.js, socket.io-client 2) an id of their own instead of
    their Engine.IO sid, so that a socket id the app shares (a broadcast, a list of who is here) does
    not name the session. Off by default for compatibility: those clients show ``socket.id`` = the sid,
    so with it on the id the client sees differs from ``socket.id`` on the server."""
    recovery: bool = False
    """Connection state recovery, as Socket.IO 4.6+ does it (its ``connectionStateRecovery``; off by
    default, as there): a socket.io-client 4 (or trisails client) whose connection is lost comes back as
    the same socket, with its id, rooms and ``data``, and gets the broadcasts it missed, in order
    (``socket.recovered`` is True). Each broadcast then carries an offset as its last argument. Engine.IO
    revision-3 clients (sails.io.js 1.2.1, socket.io-client 2) cannot recover. See docs/howto/recovery.md."""
    recovery_max_disconnection: int = 120_000
    """Milliseconds a lost socket's state, and each broadcast, is kept for it to recover (Socket.IO's
    ``maxDisconnectionDuration``, 2 minutes)."""
    recovery_skip_middlewares: bool = True
    """Whether a recovered socket connects without running the namespace's middleware again (Socket.IO's
    ``skipMiddlewares``); its connection handlers always run."""
    recovery_max_packets: int = 10_000
    """Broadcasts kept per namespace for recovery at most (the oldest go first); a socket whose last
    broadcast is no longer kept gets a fresh session. In Redis, the stream's approximate ``MAXLEN``."""
    redis_url: str = ""
    """Run as one of several processes sharing rooms, broadcasts and sessions through Redis
    (``redis://127.0.0.1:6379/0``); empty (the default) keeps everything in this process. The CLI's
    ``--redis URL`` and the environment variable ``TRISAILS_REDIS_URL`` set it too."""
    redis_key: str = "trisails"
    """The prefix of every Redis channel and key the app uses: apps sharing one Redis need different ones."""
    compression: bool = False
    """Accept permessage-deflate on websockets. Off by default, as in Sails: it costs 25–45% more CPU per
    message and about 4× the memory per connection."""

    def validate(self) -> None:
        """Raise :class:`ConfigError` for a value the server cannot run with."""
        if not self.path.startswith("/"):
            raise ConfigError(f"sockets.path must start with '/', got {self.path!r}")
        unknown = set(self.transports) - {"websocket", "polling"}
        if unknown or not self.transports:
            raise ConfigError(
                f"sockets.transports must be a non-empty list of 'websocket' and 'polling', got {self.transports!r}"
            )
        for name in (
            "ping_interval", "ping_timeout", "connect_timeout", "upgrade_timeout", "max_payload", "handshake_timeout",
            "request_rate", "request_burst", "max_connections", "max_rooms_per_socket", "presence_ttl",
            "max_presences_per_socket", "max_presence_meta_size", "max_attachments", "recovery_max_disconnection",
            "recovery_max_packets",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"sockets.{name} must be positive, got {getattr(self, name)!r}")
        if self.trust_proxy < 0:
            raise ConfigError(f"sockets.trust_proxy must be 0 (no proxy) or the number of proxies, got {self.trust_proxy!r}")
        if self.max_connections_per_ip < 0:
            raise ConfigError(f"sockets.max_connections_per_ip must be 0 (no limit) or more, got {self.max_connections_per_ip!r}")
        for name in ("outbound_buffer", "inbound_buffer"):
            if getattr(self, name) < 1:
                raise ConfigError(f"sockets.{name} must be at least 1, got {getattr(self, name)!r}")
        for origin in self.only_allow_origins:
            if (origin.startswith("https://") and origin.endswith(":443")) or (
                origin.startswith("http://") and origin.endswith(":80")
            ):
                raise ConfigError(
                    f"sockets.only_allow_origins: {origin!r} names the default port, which browsers never send "
                    "in an Origin header: leave the port out"
                )
            if origin != "*" and not _ORIGIN.fullmatch(origin) and origin != "file://":
                raise ConfigError(
                    f"sockets.only_allow_origins: {origin!r} is not an origin; write scheme://host[:port] "
                    "with no path and no trailing slash, like 'https://example.com'"
                )
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"sockets.redis_url must be a redis:// (or rediss://, unix://) URL, got {self.redis_url!r}")
        if self.slow_consumer not in ("disconnect", "drop"):
            raise ConfigError(f"sockets.slow_consumer must be 'disconnect' or 'drop', got {self.slow_consumer!r}")


@dataclass
class BlueprintSettings:
    """Which routes trisails makes for you (``config/blueprints.py``)."""

    actions: bool = True
    """Give every controller function a route of its own: ``/say/hello`` for ``api/controllers/say.py``'s
    ``hello``, for any verb. Explicit routes in ``config/routes.py`` always come first."""
    rest: bool = True
    """Give every model the REST routes: ``GET /user``, ``GET /user/:id``, ``POST /user``, ``PATCH
    /user/:id``, ``DELETE /user/:id`` and the association routes."""
    shortcuts: bool | None = None
    """The ``GET /user/create?name=ann`` style routes, handy in a browser's address bar. ``None`` means on
    in development and off in production (anyone could change data with a link)."""
    prefix: str = ""
    """A path before every blueprint route (``"/api"`` gives ``/api/user``)."""
    rest_prefix: str = ""
    """A path between :attr:`prefix` and the model, for the REST routes only (``"/v1"``)."""
    auto_watch: bool = True
    """A socket that finds records also joins the model's class room, and hears ``created``."""
    mirror: bool = False
    """Send a socket the messages about its own changes too (Sails leaves the requester out)."""
    association_policies: bool = True
    """Apply the associated model's policies wherever a blueprint reads or changes its records through
    another model: ``GET /user/1/pets`` and ``?populate=pets`` need ``pet/find``; ``PUT`` and ``DELETE
    /user/1/pets/2``, ``PUT /user/1/pets`` and a create or update with ``"pets": [1, 2]`` need
    ``pet/update``. Sails applies only the parent's policies (``pet: {"*": False}`` still lets
    ``/user/1/pets`` through); ``False`` restores that."""
    default_limit: int = 30
    """How many records ``GET /user`` answers when the request sets no ``limit``."""
    max_limit: int = 1_000
    """The most records a find (or a populate route) answers, whatever ``limit`` the request sets: a
    larger ``limit`` is lowered to it (clamped, not refused, so a client asking for "everything" still
    gets an answer), and so is :attr:`default_limit` if it is larger. Without it, a few clients reading
    ``?limit=100000`` slow every other request."""

    def validate(self) -> None:
        for name in ("prefix", "rest_prefix"):
            value = getattr(self, name)
            if value and (not value.startswith("/") or value.endswith("/")):
                raise ConfigError(f"blueprints.{name} must start with '/' and not end with one, like '/api'; got {value!r}")
        if self.default_limit < 1:
            raise ConfigError(f"blueprints.default_limit must be at least 1, got {self.default_limit!r}")
        if self.max_limit < 1:
            raise ConfigError(f"blueprints.max_limit must be at least 1, got {self.max_limit!r}")


@dataclass
class DatastoreSettings:
    """Where the models keep their records (``config/datastores.py``); see ``docs/howto/datastores.md``."""

    url: str = ""
    """``""`` for SQLite in the app's ``.tmp/`` folder, ``sqlite:///path.db``, ``sqlite://:memory:``, or
    ``postgres://user:password@host:5432/database``. The environment variable ``TRISAILS_DATABASE_URL``
    overrides it for an app folder."""
    migrate: str = "auto"
    """What lifting does to the tables: ``safe`` (touch nothing; the tables must exist), ``alter`` (create
    missing tables, and add the columns existing ones lack; never drop, rename or retype a column), ``drop`` (delete every table of the models, data
    included, and create them anew). ``auto`` is ``alter`` in development and ``safe`` in production."""
    pool_size: int = 0
    """How many database operations may run at once, each in its own worker thread with its own
    connection; 0 picks 4 for SQLite and 8 for PostgreSQL."""

    def validate(self) -> None:
        if self.migrate not in ("auto", "safe", "alter", "drop"):
            raise ConfigError(f"datastores.migrate must be 'auto', 'safe', 'alter' or 'drop', got {self.migrate!r}")
        if self.pool_size < 0:
            raise ConfigError(f"datastores.pool_size must be 0 (automatic) or more, got {self.pool_size!r}")


@dataclass
class SessionSettings:
    """The session shared by HTTP requests and sockets (``config/session.py``)."""

    enabled: bool = True
    """Give every request a ``req.session``; off, ``req.session`` is ``None`` and no cookie is sent."""
    name: str = "sails.sid"
    """The cookie's name (Sails' default, so a page written for Sails finds it)."""
    secret: str = ""
    """The key that signs the cookie. Required in production (or ``TRISAILS_SESSION_SECRET``); in
    development a random one is made, so sessions end with the process."""
    max_age: int = 86_400_000
    """Milliseconds a session lives after it was last saved (and the cookie's ``Max-Age``)."""
    rolling: bool = False
    """Save the session after every request, not only when it changed, so activity keeps it alive."""
    same_site: str = "Lax"
    """The cookie's ``SameSite``: ``Lax`` (the default), ``Strict`` or ``None`` (then ``secure`` is needed)."""
    secure: bool = False
    """Send the cookie over HTTPS only; turn it on behind TLS."""

    def validate(self) -> None:
        if not self.name or any(c in self.name for c in ' ;,="'):
            raise ConfigError(f"session.name must be a cookie name without spaces or ;,=\", got {self.name!r}")
        if self.same_site not in ("Lax", "Strict", "None"):
            raise ConfigError(f"session.same_site must be 'Lax', 'Strict' or 'None', got {self.same_site!r}")
        if self.same_site == "None" and not self.secure:
            raise ConfigError("session.same_site 'None' needs session.secure = True (browsers drop the cookie otherwise)")
        if self.max_age < 1000:
            raise ConfigError(f"session.max_age is in milliseconds and must be at least 1000, got {self.max_age!r}")


@dataclass
class SecuritySettings:
    """CSRF protection and CORS for plain HTTP (``config/security.py``); see ``docs/security.md``."""

    csrf: bool = False
    """Require the session's CSRF token (``x-csrf-token`` header or ``_csrf`` parameter) on every request
    but GET, HEAD and OPTIONS, over HTTP and sockets. Off by default, as in Sails; turn it on for any app
    where a logged-in browser session can change data. ``GET /csrfToken`` then hands out the token."""
    cors_allow_origins: tuple[str, ...] = ()
    """Other sites whose pages may read this app's HTTP responses (``"https://app.example.com"``, or
    ``"*"`` for any); empty sends no CORS headers at all."""
    cors_allow_credentials: bool = False
    """Let those pages send cookies (and so sessions) with their requests."""
    cors_allow_methods: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD")
    cors_allow_headers: tuple[str, ...] = ("content-type", "x-csrf-token", "authorization")
    cors_expose_headers: tuple[str, ...] = ()

    def validate(self) -> None:
        for origin in self.cors_allow_origins:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ConfigError(f"security.cors_allow_origins: {origin!r} is not an origin like 'https://example.com'")
        if self.cors_allow_credentials and "*" in self.cors_allow_origins:
            raise ConfigError(
                "security.cors_allow_credentials cannot go with cors_allow_origins '*': any site could act as "
                "your users; list the origins"
            )


@dataclass
class HttpSettings:
    """Where the app listens (``config/http.py``); the CLI's ``--host`` and ``--port`` override these."""

    host: str = "127.0.0.1"
    port: int = 1337
    graceful_timeout: float = 5.0
    """Seconds in-flight HTTP requests get to finish when the app is lowered."""
    backlog: int = 1024
    """Connections the kernel may hold waiting to be accepted. hypercorn's 100 overflowed when thousands
    of clients (re)connected at once, and some of them failed; the kernel caps it at ``somaxconn``."""
    max_body_size: int = 1_000_000
    """The largest HTTP request body in bytes (JSON, a form, anything an action receives); a larger one
    is answered ``413`` without being read. Bodies are read whole into memory before the action runs,
    so this bounds what one request may cost. Raise it for an app that takes uploads."""
    max_json_depth: int = 32
    """How deeply lists and objects may nest in a JSON body over HTTP, and in a virtual request's
    ``data``, ``params`` and ``headers``; deeper is answered ``400`` (a parse error over a socket)
    before any action or blueprint sees it."""
    assets_symlinks_outside: bool = False
    """Serve files that symlinks in ``assets/`` point to outside ``assets/``. Off by default: a link
    to ``/etc`` or to the app's own folder would publish it. Links within ``assets/`` always work."""
    keep_alive_timeout: float = 5.0
    """Seconds an HTTP connection may stay open with no request in it before it is closed (Node's
    default too). Clients open a new one when they need it; an idle connection only holds a slot."""
    body_timeout: float = 60.0
    """Seconds a request body may take to arrive once its head has; a connection still waiting for it
    then is closed. Bounds what a client that announces a body and never sends it can hold."""
    write_timeout: float = 30.0
    """Seconds one write of an HTTP response may wait for a client that does not read; the connection
    is then closed. A response is written in pieces of at most 64 KiB, so a slow reader is not cut off,
    one that stopped reading is."""
    max_connections_per_ip: int = 2_000
    """Open TCP connections one client address may hold, whatever they carry (HTTP, polling,
    websockets); one more is closed as soon as it is accepted. ``0`` is no limit. On by default, so that
    one address cannot take every file descriptor of the process; 2,000 is more than an office behind
    one NAT opens (each browser tab holds one or two). Behind a reverse proxy every client has the
    proxy's address: raise it there, or set ``0``. Keep it below the process's limit of open files
    (``ulimit -n``)."""

    ssl: dict[str, str] = field(default_factory=dict)
    """Serve https and wss instead of http and ws, on the same port: ``{"cert": "ssl/cert.pem", "key":
    "ssl/key.pem"}``, the paths of the PEM files of the certificate chain and of its private key
    (relative to the app folder), as Sails' ``ssl`` config. Empty (the default) serves plain HTTP.
    ``--certfile`` and ``--keyfile`` override it."""

    def validate(self) -> None:
        if self.ssl:
            if not isinstance(self.ssl, dict) or set(self.ssl) != {"cert", "key"} or not all(
                isinstance(value, str) and value for value in self.ssl.values()
            ):
                raise ConfigError(
                    f"http.ssl takes the paths of both PEM files, {{'cert': 'ssl/cert.pem', 'key': 'ssl/key.pem'}}, "
                    f"or nothing for plain HTTP; got {self.ssl!r}"
                )
        for name in ("max_body_size", "max_json_depth"):
            if getattr(self, name) < 1:
                raise ConfigError(f"http.{name} must be at least 1, got {getattr(self, name)!r}")
        for name in ("keep_alive_timeout", "body_timeout", "write_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"http.{name} must be a number of seconds above 0, got {getattr(self, name)!r}")
        if self.max_connections_per_ip < 0:
            raise ConfigError(
                f"http.max_connections_per_ip must be 0 (no limit) or more, got {self.max_connections_per_ip!r}"
            )


#: The log levels ``config/log.py`` and ``--log-level`` accept: Sails' names and Python's, mapped to
#: Python's levels (``verbose`` and ``silly`` are below ``debug``; ``silent`` logs nothing).
LOG_LEVELS = {
    "silly": 5,
    "verbose": 5,
    "debug": 10,
    "info": 20,
    "warn": 30,
    "warning": 30,
    "error": 40,
    "silent": 100,
}


@dataclass
class LogSettings:
    """What ``python -m trisails`` logs on stderr (``config/log.py``, as Sails' ``config/log.js``)."""

    level: str = "info"
    """The least severe level written: ``verbose`` (or ``silly``), ``debug``, ``info``, ``warn``,
    ``error`` or ``silent``. The command line's ``--log-level`` wins over it. An app lifted in your own
    code logs through Python's :mod:`logging` as you configure it; this setting is the command's."""
    access: bool = True
    """Write an access line for every HTTP and socket request (``trisails.access``, at ``info``):
    method, path, status, milliseconds, and the socket's id for a socket request."""

    def validate(self) -> None:
        if self.level not in LOG_LEVELS:
            raise ConfigError(f"log.level must be one of {', '.join(LOG_LEVELS)}, got {self.level!r}")


@dataclass
class ViewSettings:
    """Server-rendered pages (``config/views.py``, as Sails' ``config/views.js``); see ``docs/howto/views.md``."""

    folder: str = "views"
    """Where the templates are: relative to the app folder, or absolute."""
    layout: str = "layouts/layout"
    """The template every view is put in, as ``body`` (``views/layouts/layout.html``); ``""`` for none.
    When it is the default and the file does not exist, views are sent alone."""

    def validate(self) -> None:
        if not self.folder:
            raise ConfigError("views.folder must name a folder, like 'views'")


@dataclass
class Settings:
    """All of an app's settings."""

    environment: Literal["development", "production"] = "development"
    sockets: SocketSettings = field(default_factory=SocketSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    blueprints: BlueprintSettings = field(default_factory=BlueprintSettings)
    datastores: DatastoreSettings = field(default_factory=DatastoreSettings)
    session: SessionSettings = field(default_factory=SessionSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    log: LogSettings = field(default_factory=LogSettings)
    views: ViewSettings = field(default_factory=ViewSettings)
    custom: dict[str, Any] = field(default_factory=dict)
    """The app's own settings (``config/custom.py``), as Sails' ``sails.config.custom``."""

    @property
    def production(self) -> bool:
        return self.environment == "production"

    def validate(self) -> None:
        if self.environment not in ("development", "production"):
            raise ConfigError(f"environment must be 'development' or 'production', got {self.environment!r}")
        self.sockets.validate()
        self.http.validate()
        self.blueprints.validate()
        self.datastores.validate()
        self.session.validate()
        self.security.validate()
        self.log.validate()
        self.views.validate()
        if self.security.csrf and not self.session.enabled:
            raise ConfigError("security.csrf needs sessions (the token lives in the session): turn session.enabled back on")


def check_redis(url: str | None) -> None:
    """Refuse a Redis URL when the Redis client is not installed (checked before anything is opened)."""
    if not url:
        return
    try:
        import coredis  # noqa: F401
    except ImportError:
        raise ConfigError("sockets.redis_url needs the Redis client: pip install 'trisails[redis]'") from None


def apply_section(section: Any, values: dict[str, Any], *, source: str) -> None:
    """Set ``values`` on the settings dataclass ``section``, refusing names it does not have.

    ``source`` names where the values came from (a config file), so the error can point there.
    """
    known = {f.name: f for f in dataclasses.fields(section)}
    for name, value in values.items():
        if name not in known:
            raise ConfigError(f"{source}: unknown setting {name!r}; known settings are {', '.join(sorted(known))}")
        current = getattr(section, name)
        if isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)
        declared = str(known[name].type)
        if "Callable" in declared:
            if value is not None and not callable(value):
                raise ConfigError(f"{source}: setting {name!r} takes a function or None, got {value!r}")
            setattr(section, name, value)
            continue
        optional_bool = "bool" in declared
        if not _same_kind(current, value, optional_bool=optional_bool):
            kind = "True, False or None" if optional_bool else _kind(current)
            raise ConfigError(f"{source}: setting {name!r} takes {kind} (default {current!r}), got {value!r}")
        setattr(section, name, value)


def _kind(default: Any) -> str:
    if default is None:
        return "a number of seconds or None"
    if isinstance(default, bool):
        return "True or False"
    if isinstance(default, (int, float)):
        return "a number"
    if isinstance(default, tuple):
        return "a list of strings"
    return "a string"


def _same_kind(default: Any, value: Any, *, optional_bool: bool = False) -> bool:
    """Whether ``value`` can stand where ``default`` stood: the checks a typo or a wrong unit would fail."""
    if default is None and optional_bool:  # True, False, or None for automatic (blueprints.shortcuts)
        return value is None or isinstance(value, bool)
    if default is None:  # optional numbers, such as ack_timeout
        return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, tuple):
        return isinstance(value, tuple) and all(isinstance(v, str) for v in value)
    return True
