"""Several trisails processes, a Redis server of the test's own, a PostgreSQL database of the test's own.

The processes are the CLI (``python -m trisails FOLDER --port P --redis URL``) started as children,
each writing its output to a log file in the test's temporary folder (read back when something goes
wrong). Starting and stopping are plain blocking calls, so module-scoped fixtures can share one cluster
between several stories; everything the stories themselves do is async (trio) and bounded.

Nothing here touches the shared Redis on 6379 beyond its own ``redis_key`` (every app folder copied
here gets a unique one), and nothing here ever stops it: a story that needs Redis to go away runs a
:class:`RedisServer` of its own on a free port.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"
SHARED_REDIS = "redis://127.0.0.1:6379/0"
POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
#: Seconds a process may take to print where it serves (several start at once on a busy machine).
STARTUP = 40.0
#: Seconds a process may take, once serving, to report its Redis link up.
LINK_UP = 15.0
#: The session secret every process of a cluster shares, so a cookie signed by one is good on the others.
SESSION_SECRET = "a session secret shared by every process of the test cluster"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------------ app folders
def copy_app(destination: Path, *, with_models: bool = True, extra: dict[str, str] | None = None) -> tuple[Path, str]:
    """A copy of ``examples/quickstart`` at ``destination`` with a ``config/sockets.py`` naming a unique
    ``redis_key`` (so the run shares nothing with anyone else on the same Redis); returns the folder and
    the key. ``extra`` adds files (path relative to the folder → text); ``with_models=False`` leaves the
    models out, and with them the datastore."""
    ignore = shutil.ignore_patterns(".tmp", "__pycache__", *(() if with_models else ("models",)))
    shutil.copytree(QUICKSTART, destination, ignore=ignore)
    key = f"trisails-test-{secrets.token_hex(6)}"
    (destination / "config").mkdir(exist_ok=True)
    (destination / "config" / "sockets.py").write_text(f"redis_key = {key!r}\n")
    for relative, text in (extra or {}).items():
        path = destination / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return destination, key


# ------------------------------------------------------------------------------------------------ PostgreSQL
class PostgresDatabase:
    """A fresh database ``trisails_cluster_<random>`` on the shared server, dropped (connections and all)
    by :meth:`drop`. An unreachable server fails the test, saying so."""

    def __init__(self) -> None:
        self.name = f"trisails_cluster_{secrets.token_hex(6)}"
        self._admin("CREATE DATABASE", f'CREATE DATABASE "{self.name}"')
        self.url = f"postgres://postgres@127.0.0.1:5432/{self.name}"

    @staticmethod
    def _admin(what: str, statement: str) -> None:
        try:
            import psycopg2

            connection = psycopg2.connect(dbname="test", connect_timeout=5, **POSTGRES)
        except Exception as error:
            pytest.fail(
                "PostgreSQL is not reachable at 127.0.0.1:5432 (user postgres, database test, trust auth); the "
                f"cluster tests keep their records there, so start it (see /work/shared/services.md): {error}",
                pytrace=False,
            )
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(statement)
        except Exception as error:
            pytest.fail(f"PostgreSQL: {what} failed: {error}", pytrace=False)
        finally:
            connection.close()

    def drop(self) -> None:
        self._admin("DROP DATABASE", f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


# ------------------------------------------------------------------------------------------------ Redis
def redis_ping(port: int, timeout: float = 1.0) -> bool:
    """True if a Redis server answers PING on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _command(s: socket.socket, *words: str) -> None:
    s.sendall(f"*{len(words)}\r\n".encode() + b"".join(f"${len(w.encode())}\r\n{w}\r\n".encode() for w in words))


def _reply(reader: Any) -> Any:
    """One RESP2 reply: enough of the protocol for KEYS and DEL."""
    line = reader.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"*":
        return [_reply(reader) for _ in range(int(rest))]
    if kind == b"$":
        data = reader.read(int(rest) + 2)[:-2] if int(rest) >= 0 else None
        return data.decode() if data is not None else None
    if kind == b"-":
        raise RuntimeError(f"Redis said: {rest.decode()}")
    return int(rest) if kind == b":" else rest.decode()


def delete_keys(port: int, prefix: str) -> None:
    """Delete what a test run left in a Redis under its own ``redis_key`` (sessions, mostly)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s, s.makefile("rb") as reader:
        _command(s, "KEYS", f"{prefix}:*")
        keys = _reply(reader)
        if keys:
            _command(s, "DEL", *keys)
            _reply(reader)


def require_shared_redis() -> None:
    if not redis_ping(6379):
        pytest.fail(
            "Redis is not reachable at 127.0.0.1:6379; the cluster tests share rooms through it, so start it "
            "(see /work/shared/services.md)",
            pytrace=False,
        )


class RedisServer:
    """A ``redis-server`` child process this test owns, on a free port: it can be stopped, frozen,
    and started again on the same port."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server); the outage tests run their own", pytrace=False)
        self.starts += 1
        log = open(self.log_dir / f"redis-{self.port}-{self.starts}.log", "wb")  # noqa: SIM115 - the child writes to it
        with log:
            self.process = subprocess.Popen(
                [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--daemonize", "no"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.log_dir,
            )
        deadline = time.monotonic() + 10
        while not redis_ping(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start on port {self.port}", pytrace=False)
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server the way a crash or a restart does: the process ends and its connections close."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def freeze(self) -> None:
        """SIGSTOP: connections stay open, nothing is answered (a hung server, or a network that dropped
        everything without closing a connection)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def ensure_up(self) -> None:
        """Running and answering again, whatever an earlier story left it as (stopped, or frozen)."""
        if self.process is None or self.process.poll() is not None:
            self.start()
        else:
            self.thaw()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a frozen server does not die of SIGKILL any later
        self.stop()


# ------------------------------------------------------------------------------------------------ processes
@dataclass
class Process:
    """One trisails CLI process of the cluster."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int
    url: str = ""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=10)


def launch(name: str, folder: Path, log_dir: Path, *, redis_url: str, env: dict[str, str] | None = None) -> Process:
    """Start ``python -m trisails folder --redis redis_url`` on a free port (not waiting for it)."""
    port = free_port()
    log_path = log_dir / f"process-{name}-{port}.log"
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(
            [sys.executable, "-m", "trisails", str(folder), "--port", str(port), "--redis", redis_url],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "TRISAILS_SESSION_SECRET": SESSION_SECRET, **(env or {})},
        )
    return Process(name, popen, log_path, port)


def wait_serving(processes: Iterable[Process], timeout: float = STARTUP) -> None:
    """Wait (blocking) until each process printed its "serving ... on URL" line, then until its
    ``/__health`` says the Redis link is up (a process lifts before its link connects)."""
    pending = list(processes)
    deadline = time.monotonic() + timeout
    while pending:
        for process in list(pending):
            match = re.search(r"serving .* on (http://\S+) \(Ctrl-C to stop\)", process.log())
            if match:
                process.url = match.group(1)
                pending.remove(process)
            elif not process.alive:
                pytest.fail(f"process {process.name} exited with {process.popen.returncode}:\n{process.log()}", pytrace=False)
        if pending and time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.name}\n{p.log()}" for p in pending)
            pytest.fail(f"processes not serving after {timeout} s:\n{logs}", pytrace=False)
        time.sleep(0.05)
    wait_link_up_blocking(processes)


def wait_link_up_blocking(processes: Iterable[Process], timeout: float = LINK_UP) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5) as http:
        for process in processes:
            health: Any = None
            while True:
                try:
                    health = http.get(process.url + "/__health").json()
                except httpx.HTTPError as error:
                    health = repr(error)
                if isinstance(health, dict) and health.get("redis", {}).get("connected"):
                    break
                if time.monotonic() > deadline:
                    pytest.fail(f"process {process.name}: Redis link not up after {timeout} s: {health}\n{process.log()}", pytrace=False)
                time.sleep(0.05)


def stop_all(processes: Iterable[Process]) -> None:
    """Kill whatever still runs (lowering with SIGTERM is a story of its own, not the teardown's job)."""
    for process in processes:
        process.kill()
