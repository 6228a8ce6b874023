"""Fixtures for the model tests: every test gets a datastore of its own, SQLite or PostgreSQL.

``datastore_url`` runs a test twice, once on a SQLite file in the test's ``tmp_path`` and once on a
PostgreSQL database created for that test alone (on the server at 127.0.0.1:5432, user ``postgres``,
trust authentication) and dropped when the test is over, so no test ever sees another's rows. A
PostgreSQL server that cannot be reached fails the test with a message saying so: these tests are
never skipped.
"""

from __future__ import annotations

import queue
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("tests.models.apps")

from tests.models.apps import Caller, http_client, pets_app  # noqa: E402 - after the rewrite registration
from trisails import DatastoreSettings, Settings  # noqa: E402
from trisails.client import connect  # noqa: E402

POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
#: Databases kept ready ahead of the tests that need them, and the threads that make and drop them.
AHEAD, MAKERS, DROPPERS = 4, 2, 3


class PostgresDatabases:
    """Fresh PostgreSQL databases for the tests, one each, made ahead of need.

    ``CREATE DATABASE`` takes 0.1 to 0.7 s on this machine, most of it waiting for the disk: with about
    ninety PostgreSQL tests, waiting for each would add half a minute to the suite. Background threads
    keep :data:`AHEAD` empty databases ready (several at once: the server flushes their writes
    together), a test takes one that no test has used, and gives it back to be dropped, connections
    and all, once its app has lowered. :meth:`close` drops whatever is left, and reports any database
    it could not drop.
    """

    def __init__(self) -> None:
        try:
            self._connect().close()
        except Exception as error:
            pytest.fail(
                "PostgreSQL is not reachable at 127.0.0.1:5432 (user postgres, database test, trust auth); "
                f"the model tests run against it as well as SQLite, so start it: {error}",
                pytrace=False,
            )
        self.ready: queue.Queue[str] = queue.Queue(maxsize=AHEAD)
        self.used: queue.Queue[str | None] = queue.Queue()
        self.stopping = threading.Event()
        self.problems: list[str] = []
        self.makers = [threading.Thread(target=self._make, daemon=True) for _ in range(MAKERS)]
        self.droppers = [threading.Thread(target=self._drop, daemon=True) for _ in range(DROPPERS)]
        for thread in [*self.makers, *self.droppers]:
            thread.start()

    @staticmethod
    def _connect() -> Any:
        import psycopg2

        connection = psycopg2.connect(dbname="test", connect_timeout=5, **POSTGRES)
        connection.autocommit = True
        return connection

    def take(self) -> str:
        """The URL of a new, empty database that belongs to the caller until :meth:`give_back`."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                name = self.ready.get(timeout=0.25)
            except queue.Empty:
                if self.problems and not any(t.is_alive() for t in self.makers):
                    break
                continue
            return f"postgres://postgres@127.0.0.1:5432/{name}"
        pytest.fail(f"no PostgreSQL database for the test: {'; '.join(self.problems) or 'timed out'}", pytrace=False)

    def give_back(self, url: str) -> None:
        """Have the database of ``url`` dropped (its test is over and its app lowered)."""
        self.used.put(url.rsplit("/", 1)[1])

    def close(self) -> None:
        """Stop making databases and drop every one made; raise if any could not be dropped."""
        self.stopping.set()
        while True:  # take what nobody took, which also frees a maker waiting for room
            try:
                self.used.put(self.ready.get(timeout=0.25))
            except queue.Empty:
                if not any(t.is_alive() for t in self.makers):
                    break
        for dropper in self.droppers:
            self.used.put(None)  # each dropper stops at one of these, after the names queued before
        for dropper in self.droppers:
            dropper.join(timeout=60)
        if self.problems:
            raise RuntimeError("PostgreSQL databases of the model tests: " + "; ".join(self.problems))

    def _make(self) -> None:
        try:
            connection = self._connect()
        except Exception as error:
            self.problems.append(f"cannot connect: {error}")
            return
        try:
            while not self.stopping.is_set():
                name = f"trisails_{secrets.token_hex(6)}"
                with connection.cursor() as cursor:
                    cursor.execute(f'CREATE DATABASE "{name}"')
                self.ready.put(name)
        except Exception as error:
            self.problems.append(f"CREATE DATABASE failed: {error}")
        finally:
            connection.close()

    def _drop(self) -> None:
        connection = self._connect()
        try:
            while (name := self.used.get()) is not None:
                try:
                    with connection.cursor() as cursor:
                        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                except Exception as error:
                    self.problems.append(f"could not drop {name}: {error}")
        finally:
            connection.close()


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    """The suite's supply of fresh PostgreSQL databases (made only if a test asks for one)."""
    databases = PostgresDatabases()
    try:
        yield databases
    finally:
        databases.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each test on both datastores; one that makes requests with ``call`` also over both
    transports, except HTTP on PostgreSQL (the transport and the datastore are independent, and the
    pair adds nothing the other three do not cover)."""
    if "call" in metafunc.fixturenames:
        pairs = [("sqlite", "socket"), ("sqlite", "http"), ("postgres", "socket")]
        metafunc.parametrize(("datastore_url", "call"), pairs, indirect=True, ids=["-".join(p) for p in pairs])
    elif "datastore_url" in metafunc.fixturenames:
        metafunc.parametrize("datastore_url", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def datastore_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where the test's app keeps its records: a SQLite file, or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db.sqlite'}"  # tmp_path is absolute: sqlite:////tmp/...
        return
    databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
    url = databases.take()
    try:
        yield url
    finally:
        databases.give_back(url)


@pytest.fixture
def settings(datastore_url: str) -> Settings:
    """Development settings on the test's datastore; a test changes what its story needs."""
    return Settings(datastores=DatastoreSettings(url=datastore_url))


@pytest.fixture
async def url(settings: Settings) -> AsyncIterator[str]:
    """The base URL of a lifted app with the ``user`` and ``pet`` models, on the test's datastore."""
    async with pets_app(settings).lifted() as base:
        yield base


@pytest.fixture
async def call(request: pytest.FixtureRequest, url: str) -> AsyncIterator[Caller]:
    """Blueprint requests to :func:`url`'s app, over a trisails.client socket or over HTTP."""
    if request.param == "socket":
        async with connect(url) as client:
            yield Caller(client)
    else:
        async with http_client(url) as http:
            yield Caller(http)
