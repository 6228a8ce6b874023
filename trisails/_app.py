"""The App: settings, the realtime server, the HTTP app, and their life inside one trio nursery.

``App.lift`` is the root of the task tree::

    App.lift                       the root nursery
    ├── App._own_tasks             the app's background tasks (app.start_soon): cancelled on lowering
    ├── App._services              what serving needs: every session's timers (one task), the Redis link
    ├── _serving.serve             accepts connections on the one port
    │   └── one task per connection: hypercorn for HTTP, or the reader of a websocket to /socket.io/
    │       └── the session's nursery: Socket.IO handlers, and a writer only while output waits
    ├── Connection.run             one per long-polling session (it outlives single requests)
    └── disconnect handlers        short tasks that run after a socket has gone

``App.lower`` closes every session (websockets with 1001 "going away", so clients reconnect to the next
server), stops accepting, lets in-flight requests finish within ``http.graceful_timeout``, and returns.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import trio
from quart_trio import QuartTrio

from ._config import Settings, check_redis
from ._errors import ConfigError
from ._concurrency import InFlight
from .protocol import engineio as eio
from ._concurrency import call, on_loop
from .realtime.server import RealtimeServer
from ._current import current_app
from .realtime import _serving
from .realtime.cluster import RedisAdapter, RedisBus, route
from .realtime.presence import Presence
from .realtime.recovery import RedisRecovery
from .web.redis_sessions import RedisStore
from .protocol.engine_session import CLOSE_TIMEOUT
from .realtime.endpoint import EngineIOEndpoint
from .orm import blueprints
from .orm.binding import ModelBinding, build_entities
from .orm.datastore import Datastore
from .orm.model import Model, check_relations
from .orm.pubsub import PubSub
from .sockets import Sockets
from .web import http, virtual
from .web.policies import Policies, Policy
from .web.security import TOKEN_PATH, grant_csrf_token
from .web.sessions import MIN_SECRET_LENGTH, MemoryStore, Sessions, SessionStore, cookie_value
from .web.router import Action, Router
from .web.views import Views, views_of

__all__ = ["App"]

if TYPE_CHECKING:
    import ssl

log = logging.getLogger("trisails")

LiftHook = Callable[["App"], Awaitable[None] | None]

_P = ParamSpec("_P")
_R = TypeVar("_R")
_NOTE = "trisails: "
_NOTE_END = " (taken out of the nurseries' exception groups)"


def _sole_error(group: BaseExceptionGroup[BaseException], *, note: bool = True) -> BaseException | None:
    """The one error inside ``group`` and its nested single-member groups, or None when there are
    several (or the one is a cancellation, which trio must see as it raised it).

    With ``note``, the error gets a note naming the nurseries it escaped, from where each group was
    raised: ``raised in boom, in a task of App._own_tasks, in App.lift``.
    """
    owners: list[str] = []
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        if len(error.exceptions) != 1:
            return None
        owners.append(_nursery_owner(error))
        error = error.exceptions[0]
    if isinstance(error, trio.Cancelled):
        return None
    if note:
        notes: list[str] = getattr(error, "__notes__", [])
        earlier = next((text for text in notes if text.startswith(_NOTE)), None)
        if earlier is not None:  # unwrapped once already (by lift, now by lifted): extend the path
            notes.remove(earlier)
            path = earlier.removeprefix(_NOTE).removesuffix(_NOTE_END) + ", in " + ", in ".join(reversed(owners))
        else:
            raised_in = error.__traceback__.tb_frame.f_code.co_qualname if error.__traceback__ else "?"
            path = f"raised in {raised_in}, in a task of " + ", in ".join(reversed(owners))
        error.add_note(_NOTE + path + _NOTE_END)
    return error


def _nursery_owner(group: BaseExceptionGroup[BaseException]) -> str:
    """The function whose nursery raised ``group``: the last frame before trio's own code."""
    owner = "?"
    tb = group.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if tb.tb_frame.f_globals.get("__name__", "").partition(".")[0] == "trio":
            break
        owner = code.co_qualname
        tb = tb.tb_next
    return owner


def _is_leaf_of(group: BaseExceptionGroup[BaseException], error: BaseException | None) -> bool:
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
        leaf = leaf.exceptions[0]
    return leaf is error


def _reraise(error: BaseException) -> NoReturn:
    """Raise ``error`` again, out of its groups, keeping its own ``__context__`` (raising sets it to the
    exception being handled: the group, or the cancellation of the ``with`` block around it)."""
    context = error.__context__
    try:
        raise error
    finally:
        error.__context__ = context


def _one_error(lift: Callable[_P, Awaitable[_R]]) -> Callable[_P, Awaitable[_R]]:
    """Make an error that escapes one of the app's tasks come out of ``lift`` as itself (see
    :func:`_sole_error`), so ``except ValueError`` catches it; several errors stay a group."""

    @functools.wraps(lift)
    async def unwrapping(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await lift(*args, **kwargs)
        except BaseExceptionGroup as group:
            sole = _sole_error(group)
            if sole is None:
                raise
        _reraise(sole)

    return unwrapping


class App:
    """A trisails application: HTTP routes and realtime sockets on one port.

    Build one in code (``App()``, then ``app.io.on("connection")``, ``app.http.route(...)``) or load an app
    folder with :meth:`App.load`. Serve it with :meth:`lift` inside a nursery, or with
    ``python -m trisails APP_DIR``.
    """

    def __init__(self, settings: Settings | None = None, *, root: str | Path | None = None) -> None:
        self.settings = settings if settings is not None else Settings()
        self.settings.validate()
        self.root = Path(root) if root is not None else None
        self.io = RealtimeServer(self.settings.sockets)
        """The realtime server (what Sails calls ``sails.io``): namespaces, sockets, rooms."""
        self.http = QuartTrio("trisails")
        """The quart-trio app that serves plain HTTP."""
        self.url: str | None = None
        """The base URL the app listens on, once lifted (``http://127.0.0.1:1337``)."""
        self.state: dict[str, Any] = {}
        """The app's own long-lived objects (a game arena, a cache), reachable wherever the app is."""
        self.router = Router()
        """The route table shared by HTTP and socket requests."""
        self.sockets = Sockets(self)
        """The ``sails.sockets`` API: rooms and messages for the main namespace."""
        self.presence = Presence(self.io)
        """Who is in which room, by user (or any key), across every process: see ``docs/howto/presence.md``."""
        self._default_store = MemoryStore()
        self.session_store: SessionStore = self._default_store
        """Where sessions are kept between requests: in memory (or in Redis, when the app runs with
        ``sockets.redis_url``) unless the app sets another store, before it lifts or in a lift hook."""
        self.sessions = Sessions(self.settings.session, store=self.session_store)
        """Cookies and ``req.session``, for HTTP and sockets alike (rebuilt from the settings at lift)."""
        self.policies = Policies()
        """The policies and the map of which guard which actions (``config/policies.py``)."""
        self.models: dict[str, ModelBinding] = {}
        """The app's models by identity, while it is lifted (``app.models["user"].entity`` is the Pony entity)."""
        self.datastore: Datastore | None = None
        """The database of the models, while the app is lifted."""
        self._services_scope = trio.CancelScope()
        self.bus: RedisBus | None = None
        """The link to the app's other processes while lifted with ``sockets.redis_url``."""
        self._views: Views | None = None  # the templates, made on first use (trisails.web.views)
        self._declarations: dict[str, type[Model]] = {}
        self._checked_models: tuple[type[Model], ...] = ()
        self._blueprints_installed = False
        self.router.add_action("security/grant-csrf-token", grant_csrf_token, route=False)
        self._engine = EngineIOEndpoint(
            self.io, self.settings.sockets, is_draining=lambda: self.draining, session_cookie=self._session_cookie
        )
        self.draining = False
        """True while the app lowers: new sessions and socket requests are refused with 503."""
        self.socket_requests = InFlight()
        """Socket (virtual) requests being handled now; lowering lets them finish."""
        self._http_requests = InFlight()
        self.io.on("connection", partial(virtual.attach, self))
        self._http_installed = False
        self._on_lift: list[LiftHook] = []
        self._tasks: trio.Nursery | None = None
        self._lower_requested: trio.Event | None = None
        self._engine_path = self.settings.sockets.path.rstrip("/")

    def _session_cookie(self, header: str | None) -> str | None:
        """The session cookie's value in a ``Cookie`` header (None: sessions are off, or it has none):
        what binds a polling session to the browser that opened it."""
        session = self.settings.session
        if not header or not session.enabled:
            return None
        return cookie_value(header, session.name)

    @property
    def views(self) -> Views:
        """The app's views (``views/*.html``, Jinja2): ``app.views.environment`` is the Jinja2
        environment, for adding filters and globals; ``res.view`` renders with it."""
        return views_of(self)

    @classmethod
    def load(cls, folder: str | Path, *, environment: str | None = None) -> App:
        """Load an app folder (``config/*.py``); see ``docs/howto/app-folder.md``."""
        from ._loader import load_app

        return load_app(cls, Path(folder), environment=environment)

    def route(self, spec: str, target: Action | str | dict[str, Any]) -> None:
        """Add a route, as a line of ``config/routes.py`` would: ``app.route("GET /user/:id", "user.find")``."""
        self.router.add(spec, target)

    def action(self, name: str, fn: Action | None = None) -> Any:
        """Register ``fn(req, res)`` as the action ``name`` (``"say/hello"``), with its action route
        unless ``blueprints.actions`` is off. Usable as a decorator: ``@app.action("say/hello")``."""

        def register(action: Action) -> Action:
            self.router.add_action(name, action, route=self.settings.blueprints.actions)
            return action

        return register(fn) if fn is not None else register

    def model(self, declaration: type[Model]) -> type[Model]:
        """Give the app the model ``declaration`` (a :class:`~trisails.Model` subclass): its table, its
        blueprint routes, its pub-sub. An app folder's ``api/models/*.py`` are added this way. Usable as
        a class decorator."""
        if not (isinstance(declaration, type) and issubclass(declaration, Model)) or declaration is Model:
            raise ConfigError(f"app.model() takes a subclass of trisails.Model, got {declaration!r}")
        if self._lower_requested is not None:
            raise ConfigError("add models before the app lifts")
        known = self._declarations.get(declaration.identity)
        if known is not None and known is not declaration:
            raise ConfigError(
                f"two models have the identity {declaration.identity!r} ({known.__qualname__} and "
                f"{declaration.__qualname__}); give one another identity: class {declaration.__name__}(Model, identity=...)"
            )
        self._declarations[declaration.identity] = declaration
        return declaration

    async def _open_models(self) -> None:
        """Build this lift's Pony entities, connect, map the tables, and set up pub-sub for each model."""
        declarations = list(self._declarations.values())
        self._check_models()
        datastore = Datastore(self.settings.datastores, root=self.root, production=self.settings.production)
        self.datastore = datastore
        entities = build_entities(datastore.db, declarations)
        await trio.to_thread.run_sync(datastore.open)
        models = {d.identity: ModelBinding(d, entities[d.identity], datastore) for d in declarations}
        for binding in models.values():
            binding.models = models
            binding.pubsub = PubSub(binding, self.sockets)
        self.models = models

    def _check_models(self) -> None:
        """Check the model declarations (types, relations, options) without opening the datastore;
        :class:`~trisails.orm.model.DeclarationError` (a ConfigError) says what to change. Done once for a
        given set of models: the loader does it before anything opens, the lift only if models changed."""
        declarations = tuple(self._declarations.values())
        if declarations != self._checked_models:
            check_relations(declarations)
            self._checked_models = declarations

    def _close_models(self) -> None:
        if self.datastore is not None:
            self.datastore.close()
        self.datastore = None
        self.models = {}

    def policy(self, name: str, fn: Policy | None = None) -> Any:
        """Make ``fn(req, res)`` the policy ``name``, for :meth:`set_policies` to refer to. Usable as a
        decorator: ``@app.policy("is_logged_in")``."""

        def register(policy: Policy) -> Policy:
            self.policies.add(name, policy)
            return policy

        return register(fn) if fn is not None else register

    def set_policies(self, mapping: dict[str, Any]) -> None:
        """Set which policies guard which actions, as ``config/policies.py``'s ``policies`` dict does:
        ``{"*": "is_logged_in", "say/hello": True, "user": {"destroy": ["is_logged_in", "is_admin"]}}``."""
        self.policies.configure(mapping)

    def on_lift(self, hook: LiftHook) -> LiftHook:
        """Register ``hook(app)`` (sync or async) to run when the app lifts, before it accepts connections."""
        self._on_lift.append(hook)
        return hook

    @on_loop
    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None) -> None:
        """Run ``fn(*args)`` as a task the app owns: a game loop, a ticker, a feed poller.

        It starts now and is cancelled when the app lowers, like every task of the app. Call it from an
        ``on_lift`` hook (or ``config/bootstrap.py``) or from anything running while the app is lifted.
        """
        if self._tasks is None:
            raise RuntimeError("the app is not lifted: start background tasks from an on_lift hook (bootstrap)")
        self._tasks.start_soon(fn, *args, name=name)

    async def _services(self, task_status: trio.TaskStatus[trio.Nursery]) -> None:
        """The nursery of what serving needs (the heartbeats, the Redis link): it lives until the
        listener has stopped and drained, then its tasks are cancelled."""
        self._services_scope = trio.CancelScope()
        with self._services_scope:
            async with trio.open_nursery() as nursery:
                task_status.started(nursery)
                await trio.sleep_forever()

    async def _serve(self, *args: Any, task_status: trio.TaskStatus[str], **kwargs: Any) -> None:
        """The listener, and when it is done, the end of the services it needed."""
        try:
            await _serving.serve(*args, task_status=task_status, **kwargs)
            # closed polling sessions hand their last packets to a final poll; their timers end them
            await self._engine.sessions.wait_empty(CLOSE_TIMEOUT + 0.5)
        finally:
            self._services_scope.cancel()

    async def _own_tasks(self, task_status: trio.TaskStatus[trio.Nursery]) -> None:
        """The nursery of the app's background tasks; it is cancelled as soon as lowering starts."""
        assert self._lower_requested is not None
        async with trio.open_nursery() as nursery:
            task_status.started(nursery)
            await self._lower_requested.wait()
            nursery.cancel_scope.cancel()

    # ----------------------------------------------------------------------------------------- ASGI
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The ASGI entry point: ``/socket.io/`` goes to the realtime endpoint, the rest to the HTTP app."""
        if scope["type"] in ("http", "websocket"):
            if _serving.is_socket_path(scope.get("path", ""), self._engine_path):
                with self._http_requests.track():
                    await self._engine(scope, receive, send)
                return
            with self._http_requests.track():
                await self.http(scope, receive, send)  # type: ignore[arg-type]
            return
        await self.http(scope, receive, send)  # type: ignore[arg-type]

    # ----------------------------------------------------------------------------------------- lifetime
    @_one_error
    async def lift(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        listeners: Sequence[trio.abc.Listener[Any]] | None = None,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve the app until :meth:`lower` is called; ``task_status.started`` gets the base URL.

        Use it with ``await nursery.start(app.lift)``, or :meth:`lifted` as a context manager. With
        ``listeners`` (trio listeners, such as :class:`trisails.testing.MemoryListener`) the app serves
        those instead of opening ``host:port``.
        """
        if self._lower_requested is not None:
            raise ConfigError("this App is already lifted; lower it before lifting it again")
        self._check_settings()
        self._lower_requested = trio.Event()
        app_token = current_app.set(self)
        http_settings = self.settings.http
        config = _serving.hypercorn_config(
            graceful_timeout=http_settings.graceful_timeout,
            backlog=http_settings.backlog,
            max_message_size=self.settings.sockets.max_payload,
            keep_alive_timeout=http_settings.keep_alive_timeout,
        )
        limits = _serving.ConnectionLimits(
            keep_alive_timeout=http_settings.keep_alive_timeout,
            body_timeout=http_settings.body_timeout,
            write_timeout=http_settings.write_timeout,
            max_connections_per_ip=http_settings.max_connections_per_ip,
        )
        ssl_context = self._ssl_context()
        self.http.config["MAX_CONTENT_LENGTH"] = http_settings.max_body_size
        stop_serving = trio.Event()
        try:
            async with trio.open_nursery() as root:
                self.io.bind(root)
                self._engine.bind(root)
                self._tasks = await root.start(self._own_tasks)
                services = await root.start(self._services)
                services.start_soon(self._engine.keep_time)
                services.start_soon(self._engine.read_websockets)
                if self.settings.sockets.redis_url:
                    await self._join_cluster(services)
                if self._declarations:
                    await self._open_models()
                if not self._blueprints_installed:
                    if self.models:
                        blueprints.install(self)
                    # built in: no session, no policy (a load balancer has neither)
                    self.router.add_blueprint("GET", "/__health", _health, "trisails/health", {"builtin": True})
                    if self.settings.security.csrf:  # after every other route: the app may bind its own
                        self.router.add_blueprint("GET", TOKEN_PATH, grant_csrf_token, "security/grant-csrf-token", {})
                    self._blueprints_installed = True
                for hook in self._on_lift:
                    await call(hook, self)
                # after the hooks, which may have given the app a session store of its own
                store = self.session_store
                if self.bus is not None and store is self._default_store:
                    store = RedisStore(self.bus)  # several processes share their sessions
                self.sessions = Sessions(self.settings.session, store=store)
                if not self._http_installed:
                    # last, so routes the app added to app.http itself take precedence
                    http.install(self)
                    self._http_installed = True
                self.url = await root.start(
                    partial(
                        self._serve,
                        self,
                        config,
                        self._engine,
                        host=host or http_settings.host,
                        port=http_settings.port if port is None else port,
                        path=self._engine_path,
                        compression=self.settings.sockets.compression,
                        shutdown_trigger=stop_serving.wait,
                        requests_done=self._http_requests.wait_idle,
                        listeners=listeners,
                        limits=limits,
                        ssl_context=ssl_context,
                    )
                )
                log.info("trisails app lifted on %s", self.url)
                task_status.started(self.url)
                await self._lower_requested.wait()
                # drain: no new sessions or socket requests; those in flight (and their database
                # transactions) finish within graceful_timeout; then sockets are told, then HTTP drains
                self.draining = True
                if not await self.socket_requests.wait_idle(http_settings.graceful_timeout):
                    log.warning("lowering: %d socket requests still running after %.1f s; they are cancelled",
                                self.socket_requests.count, http_settings.graceful_timeout)
                self._close_sessions()
                stop_serving.set()
        finally:
            self.draining = False
            if self.bus is not None:  # the adapters keep the dead link: it drops what it is given
                self.bus = None
                self.sessions = Sessions(self.settings.session, store=self.session_store)
            self._close_models()
            current_app.reset(app_token)
            self._tasks = None
            self._lower_requested = None
            self.url = None
        log.info("trisails app lowered")

    def _ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of ``http.ssl`` (its paths relative to the app folder), or None for plain HTTP."""
        files = self.settings.http.ssl
        if not files:
            return None
        base = self.root if self.root is not None else Path.cwd()
        return _serving.server_ssl_context(str(base / files["cert"]), str(base / files["key"]))

    async def _join_cluster(self, nursery: trio.Nursery) -> None:
        """Share rooms, broadcasts and sessions with the app's other processes through Redis."""
        check_redis(self.settings.sockets.redis_url)
        bus = RedisBus(self.settings.sockets.redis_url, key=self.settings.sockets.redis_key)
        self.bus = bus
        adapters: dict[str, RedisAdapter] = {}

        def make(deliver: Callable[[str, Any], object], name: str) -> RedisAdapter:
            adapters[name] = RedisAdapter(deliver, bus, name)
            return adapters[name]

        self.io.use_adapter(make)
        sockets = self.settings.sockets
        self.io.use_recovery(
            lambda name: RedisRecovery(bus, name, sockets.recovery_max_disconnection / 1000, sockets.recovery_max_packets)
        )
        adapters["/"].apply = self.sockets._apply
        route(bus, adapters.get)
        if not Sessions(self.settings.session).has_secret:
            log.warning(
                "sockets.redis_url is set but session.secret is not: each process makes up its own secret, so "
                "a session cannot follow a client to another process; give every process the same secret"
            )
        await nursery.start(self._run_bus, bus)
        nursery.start_soon(self.presence.run, bus)

    async def _run_bus(self, bus: RedisBus, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await bus.run(task_status=task_status)
        except* Exception as group:
            # only while it is being cancelled: the Redis client may fail to close its connections
            log.debug("Redis link closed untidily: %r", group.exceptions)

    def health(self) -> dict[str, Any]:
        """How the app is: ``status`` is ``"ok"``, or ``"degraded"`` while Redis is unreachable (sockets
        on this process are still served). Served as JSON at ``GET /__health``."""
        report: dict[str, Any] = {"status": "ok", "sessions": len(self._engine.sessions), "draining": self.draining}
        if self.bus is not None:
            report["redis"] = self.bus.statistics()
            if not self.bus.connected:
                report["status"] = "degraded"
        if self.draining:
            report["status"] = "draining"
        return report

    def _check_settings(self) -> None:
        """Refuse to lift with settings that are unsafe where they are (production) or inconsistent."""
        self.settings.validate()
        if not self.settings.production:
            return
        problems = []
        sessions = Sessions(self.settings.session)
        if self.settings.session.enabled and not sessions.has_secret:
            problems.append(
                "a session secret: set secret in config/session.py or TRISAILS_SESSION_SECRET (a long random "
                "string, the same on every process), or turn sessions off (session.enabled = False)"
            )
        elif self.settings.session.enabled and sessions.secret_too_short:
            problems.append(
                f"a session secret of at least {MIN_SECRET_LENGTH} characters (the one set is shorter, so it could "
                "be guessed): make one with python -c \"import secrets; print(secrets.token_urlsafe(48))\" and set "
                "it in TRISAILS_SESSION_SECRET or secret in config/session.py"
            )
        sockets = self.settings.sockets
        if not sockets.only_allow_origins and sockets.before_connect is None:
            problems.append(
                "the pages allowed to open sockets: set only_allow_origins in config/sockets.py "
                "(['https://example.com']), or a before_connect hook, or ['*'] to allow any page on purpose"
            )
        if problems:
            raise ConfigError("production mode needs " + "; and ".join(problems))

    def lower(self) -> None:
        """Ask a lifted app to stop: sessions are closed, then the server; :meth:`lift` then returns."""
        if self._lower_requested is not None:
            self._lower_requested.set()

    def _close_sessions(self) -> None:
        for session in self._engine.sessions:
            session.close("server shutting down", code=1001)

    @asynccontextmanager
    async def lifted(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Lift the app for the duration of a ``with`` block and yield its base URL (tests use port 0)."""
        self._check_settings()  # here too, so a refusal is a plain ConfigError, not an exception group
        in_block: BaseException | None = None  # the block's own error needs no note of where it was raised
        try:
            async with trio.open_nursery() as nursery:
                url = await nursery.start(self.lift, host, port)
                token = current_app.set(self)  # ``sails`` resolves in the block too
                try:
                    yield url
                except BaseException as error:
                    in_block = error
                    raise
                finally:
                    current_app.reset(token)
                    self.lower()
        except BaseExceptionGroup as group:
            # one error (a ConfigError from the datastore, a ValueError from an app task, one raised in
            # the block) comes out as itself, so `except ValueError` catches it; several stay a group
            sole = _sole_error(group, note=not _is_leaf_of(group, in_block))
            if sole is None:
                raise
        else:
            return
        _reraise(sole)

    def statistics(self) -> dict[str, Any]:
        """Live counts for health checks and tests: Engine.IO sessions, sockets and rooms per namespace."""
        return {"sessions": len(self._engine.sessions), "namespaces": self.io.statistics()}


def _health(req: Any, res: Any) -> None:
    """``GET /__health``: :meth:`App.health` as JSON, for load balancers and monitoring: 200 while the
    app serves (``degraded`` too: its sockets are still served), 503 while it is shutting down."""
    report = req.app.health()
    res.status(503 if report["status"] == "draining" else 200).json(report)
