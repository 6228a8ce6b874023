"""The datastore: one Pony database per app, and the worker threads that talk to it.

Pony is blocking, and its sessions belong to a thread. So every unit of database work is a plain
function that :meth:`Datastore.run` runs in a worker thread, inside a ``db_session`` of its own, under a
capacity limiter sized to the database. The function returns plain data (dicts, ids), never entities,
and whatever it wants published is published by the caller once ``run`` has returned, that is after
the commit. Nothing holds a session across an ``await``: the event loop never sees one.

The URL picks the database:

* ``""`` (the default): SQLite in ``.tmp/localDiskDb.sqlite`` under the app folder, so data survives a
  restart, as with Sails' ``sails-disk`` (an app built in code, without a folder, gets a file in a
  temporary folder that is removed when the app lowers);
* ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, or ``sqlite://:memory:`` (kept in
  memory, shared by the worker threads, gone when the app lowers);
* ``postgres://user:password@host:port/database`` (or ``postgresql://``), through psycopg2.
"""

from __future__ import annotations

import importlib
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

import trio
from pony import orm

from .._errors import ConfigError
from .alter import AlterError, add_missing_columns
from .model import ModelError

if TYPE_CHECKING:
    from .._config import DatastoreSettings

__all__ = ["Datastore", "check_url"]

log = logging.getLogger("trisails.orm")

T = TypeVar("T")

#: Pony keeps every distinct query shape it has translated; past this many the cache starts afresh.
TRANSLATOR_CACHE_LIMIT = 2000
DEFAULT_FILE = ".tmp/localDiskDb.sqlite"
#: The advisory lock key under which trisails processes change a PostgreSQL schema, one at a time.
SCHEMA_LOCK = 0x7472_6973_6169_6C73 & 0x7FFF_FFFF_FFFF_FFFF  # "trisails"


class Datastore:
    """One app's database: where it is, the Pony ``Database`` on it, and the threads that use it."""

    def __init__(self, settings: DatastoreSettings, *, root: Path | None, production: bool) -> None:
        self.settings = settings
        self.production = production
        self.provider, self.bind_args, self._scratch = _parse_url(settings.url, root)
        size = settings.pool_size or (8 if self.provider == "postgres" else 4)
        self.limiter = trio.CapacityLimiter(size)
        """At most this many units of work at once: each holds a database connection."""
        # Import Pony's provider module here, once, in the event loop's thread: two apps binding in two
        # worker threads at once could otherwise each see it half imported.
        importlib.import_module(f"pony.orm.dbproviders.{self.provider}")
        self.db = orm.Database()
        self._connections: list[Any] = []
        self._connections_lock = threading.Lock()

    @property
    def migrate(self) -> str:
        """What lift does to tables: ``alter`` in development and ``safe`` in production, unless set."""
        if self.settings.migrate == "auto":
            return "safe" if self.production else "alter"
        return self.settings.migrate

    def open(self) -> None:
        """Connect and map the entities already defined on :attr:`db` (blocking: call it in a thread).

        ``safe`` checks the tables exist and leaves them alone; ``alter`` creates the missing ones and
        adds the columns existing ones lack (never dropping, renaming or retyping one:
        :mod:`trisails.orm.alter`); ``drop`` deletes
        every table of the models, data included, and creates them anew.
        """
        if self.provider == "sqlite":
            self.db.on_connect(provider="sqlite")(_tune_sqlite)
        try:
            self.db.bind(provider=self.provider, **self.bind_args)
        except Exception as error:
            raise ConfigError(f"cannot open the datastore {self.describe()}: {error}") from error
        migrate = self.migrate
        with self._schema_lock():
            self._map(migrate)
        log.info("datastore %s open (migrate=%s, %d workers)", self.describe(), migrate, self.limiter.total_tokens)

    def _map(self, migrate: str) -> None:
        try:
            if migrate == "drop":
                self.db.generate_mapping(create_tables=False, check_tables=False)
                self.db.drop_all_tables(with_all_data=True)
                self.db.create_tables()
            elif migrate == "alter":
                self.db.generate_mapping(create_tables=False, check_tables=False)
                add_missing_columns(self.db)  # Pony never changes an existing table; this adds columns
                self.db.create_tables(check_tables=True)  # then the missing tables, indexes, foreign keys
            else:
                self.db.generate_mapping(create_tables=False, check_tables=True)
        except AlterError:
            raise
        except (orm.DBException, orm.MappingError) as error:
            hint = " (migrate is 'safe', which never creates tables: run once with 'alter')" if migrate == "safe" else ""
            raise ConfigError(f"the tables of the datastore {self.describe()} do not fit the models{hint}: {error}") from error
        finally:
            self._keep_connection()

    @contextmanager
    def _schema_lock(self) -> Iterator[None]:
        """On PostgreSQL, one process at a time creates or drops tables: processes of one app lifting
        together on an empty database would otherwise race to create the same tables (and one would fail
        with a duplicate-type error). A session-level advisory lock, on a connection of its own."""
        if self.provider != "postgres":
            yield
            return
        import psycopg2

        connection = psycopg2.connect(**self.bind_args)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
            yield
        finally:
            connection.close()  # ends the session, and so releases the lock

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in a worker thread, in a ``db_session`` committed when it returns (rolled back
        if it raises), and return its result, which must not hold Pony entities."""
        result = await trio.to_thread.run_sync(self._unit, fn, args, limiter=self.limiter)
        _check_plain(result, fn)
        return result

    def _unit(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            with orm.db_session(strict=True):
                return fn(*args)
        finally:
            self._keep_connection()
            cache = self.db._translator_cache  # one entry per query shape, kept for good by Pony
            if len(cache) > TRANSLATOR_CACHE_LIMIT:
                cache.clear()

    def _keep_connection(self) -> None:
        """Note this thread's connection, so :meth:`close` can close it from another thread."""
        provider = self.db.provider
        con = getattr(provider.pool, "con", None) if provider is not None else None
        if con is not None:
            with self._connections_lock:
                if not any(con is known for known in self._connections):
                    self._connections.append(con)

    def close(self) -> None:
        """Close every connection the worker threads opened, and remove a temporary database."""
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for con in connections:
            try:
                con.close()
            except Exception:  # already closed or broken: nothing left to release
                pass
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def describe(self) -> str:
        """Where the data lives, without the password."""
        if self.provider == "postgres":
            a = self.bind_args
            return f"postgres://{a.get('user', '')}@{a.get('host', '')}:{a.get('port', 5432)}/{a.get('database', '')}"
        return f"sqlite:{self.bind_args['filename']}"


def _tune_sqlite(db: Any, connection: Any) -> None:
    """WAL and ``synchronous=NORMAL``: about 10× faster commits, and readers never wait for a writer."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")


def check_url(url: str) -> None:
    """Refuse a datastore URL trisails cannot use, or whose driver is not installed, touching neither
    the disk nor the network: an app folder is checked this way before anything is opened."""
    if not url:
        return
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        rest = url[len("sqlite://") :]
        if rest not in (":memory:", "/:memory:") and (not rest.startswith("/") or rest == "/"):
            raise ConfigError(f"datastores.url {url!r}: write sqlite:///relative/file.db or sqlite:////absolute/file.db")
        return
    if parts.scheme in ("postgres", "postgresql"):
        if not parts.path.lstrip("/"):
            raise ConfigError(f"datastores.url {url!r} names no database: postgres://user@host:5432/DATABASE")
        try:
            importlib.import_module("psycopg2")
        except ImportError as error:
            raise ConfigError(
                f"the datastore {parts.scheme}://{parts.hostname or ''}/{parts.path.lstrip('/')} needs the PostgreSQL "
                f"driver psycopg2, which cannot be imported ({error}); install it with pip install 'trisails[postgres]'"
            ) from None
        return
    raise ConfigError(f"datastores.url {url!r}: trisails knows sqlite:// and postgres:// URLs")


def _parse_url(url: str, root: Path | None) -> tuple[str, dict[str, Any], Path | None]:
    """``(pony provider, bind arguments, a scratch folder to remove at close)`` for a datastore URL."""
    check_url(url)
    if not url:
        if root is None:
            scratch = Path(tempfile.mkdtemp(prefix="trisails-db-"))
            return "sqlite", {"filename": str(scratch / "db.sqlite"), "create_db": True}, scratch
        path = root / DEFAULT_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        return "sqlite", {"filename": str(path), "create_db": True}, None
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        rest = url[len("sqlite://") :]
        if rest in (":memory:", "/:memory:"):
            return "sqlite", {"filename": ":sharedmemory:"}, None
        if not rest.startswith("/") or rest == "/":
            raise ConfigError(f"datastores.url {url!r}: write sqlite:///relative/file.db or sqlite:////absolute/file.db")
        path = Path(rest[1:])
        if not path.is_absolute():
            path = (root or Path.cwd()) / path
        path.parent.mkdir(parents=True, exist_ok=True)
        return "sqlite", {"filename": str(path), "create_db": True}, None
    if parts.scheme in ("postgres", "postgresql"):
        database = parts.path.lstrip("/")
        if not database:
            raise ConfigError(f"datastores.url {url!r} names no database: postgres://user@host:5432/DATABASE")
        args: dict[str, Any] = {"database": unquote(database), "host": parts.hostname or "127.0.0.1"}
        if parts.port:
            args["port"] = parts.port
        if parts.username:
            args["user"] = unquote(parts.username)
        if parts.password:
            args["password"] = unquote(parts.password)
        return "postgres", args, None
    raise ConfigError(f"datastores.url {url!r}: trisails knows sqlite:// and postgres:// URLs")


def _check_plain(result: Any, fn: Callable[..., Any]) -> None:
    """Refuse a result holding entities: they are useless (and unsafe) once their session is over."""
    stack: list[Any] = [result]
    seen = 0
    while stack and seen < 10_000:
        value = stack.pop()
        seen += 1
        if isinstance(value, orm.core.Entity):
            raise ModelError(
                f"{getattr(fn, '__qualname__', fn)!r} returned a Pony entity ({value!r}); entities cannot leave "
                "their db_session: return record.to_dict() or primary keys instead"
            )
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple, set, frozenset)):
            stack.extend(value)
