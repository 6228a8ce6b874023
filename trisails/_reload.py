"""``python -m trisails --reload``: restart the app when a file under its folder changes.

A supervisor process holds the port for the whole session; the app runs in a child process (the same
command without ``--reload``) on a private port of 127.0.0.1, and the supervisor relays each connection
to it byte for byte (:mod:`trisails.realtime._relay`). When a file changes (``watchfiles``, on trio through anyio), the child is lowered
as on Ctrl-C (its sockets are told to reconnect) and a new one is started, which imports every file
afresh. Meanwhile the port stays open: a connection that arrives during the restart waits for the new
child instead of being refused. A child that cannot start (a syntax error just saved) prints its one
message; connections then get a 503 saying so, until the next change starts a good one.

Only Python files count: they are what a running app has imported. Assets are served from disk and
views are read again when they change, so neither needs a restart; ``.tmp/`` (the SQLite database),
``__pycache__`` and version control folders are ignored.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

from ._errors import AppLoadError
from .realtime import _relay

__all__ = ["reload_command"]

log = logging.getLogger("trisails")

#: Seconds a connection waits for a child that is (re)starting before it is answered 503.
WAIT_FOR_CHILD = 30.0
#: Seconds a child gets to lower before it is killed, and to say it serves once started.
STOP_TIMEOUT = 10.0
START_TIMEOUT = 60.0
#: Milliseconds of quiet after a change before the restart (an editor saving several files at once).
DEBOUNCE_MS = 200
SERVING = re.compile(rb"^trisails: serving .* on (https?://\S+) \(Ctrl-C to stop\)")


class ReloadUnavailable(AppLoadError):
    """``--reload`` needs the ``watchfiles`` package, which is not installed."""


class Supervisor:
    """The port, the child serving the app, and the relay between them."""

    def __init__(self, folder: Path, child_args: list[str]) -> None:
        self.folder = folder
        self.child_args = child_args
        self.child: trio.Process | None = None
        self.child_port: int | None = None
        self.failed = False
        """Whether the latest child could not start (connections get a 503 until a change)."""
        self.changed = trio.Event()
        """Set (and replaced) whenever the child starts serving, fails, or is stopped."""
        self.stopping = trio.Event()
        self.starts = 0
        self.nursery: trio.Nursery | None = None

    def _notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    # ------------------------------------------------------------------------------------- the child
    async def start_child(self) -> None:
        """Start the app in a child process and wait (bounded) for its "serving ... on URL" line."""
        self.failed = False
        self.child_port = None
        self.starts += 1
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "trisails", *self.child_args],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.child = process
        assert process.stdout is not None
        buffer = b""
        with trio.move_on_after(START_TIMEOUT):
            while True:
                chunk = await process.stdout.receive_some(4096)
                if not chunk:
                    break  # it exited: its message is on stderr already
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    match = SERVING.match(line)
                    if match:
                        self.child_port = int(match.group(1).rsplit(b":", 1)[1])
                        self._notify()
                        if self.starts > 1:
                            print("trisails: the app is serving again", flush=True)
                        return self._forward(process, buffer)
                    _echo(line)
        await self.stop_child()
        self.failed = True
        self._notify()
        print(
            f"trisails: the app in {self.folder} did not start; connections get a 503 until a change fixes it "
            "(the message above says what is wrong)",
            file=sys.stderr, flush=True,
        )

    def _forward(self, process: trio.Process, buffer: bytes) -> None:
        """Pass the child's output on, line by line, until it ends (in the background)."""

        async def forward() -> None:
            assert process.stdout is not None
            rest = buffer
            try:
                while True:
                    chunk = await process.stdout.receive_some(4096)
                    if not chunk:
                        break
                    rest += chunk
                    *lines, rest = rest.split(b"\n")
                    for line in lines:
                        _echo(line)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                pass

        assert self.nursery is not None
        self.nursery.start_soon(forward)

    async def stop_child(self) -> None:
        """Lower the child as Ctrl-C would (SIGTERM), killing it if it takes too long."""
        process, self.child, self.child_port = self.child, None, None
        self._notify()
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        with trio.move_on_after(STOP_TIMEOUT):
            await process.wait()
        if process.returncode is None:
            log.warning("the app did not lower within %g s; killing it", STOP_TIMEOUT)
            process.kill()
            await process.wait()

    # ------------------------------------------------------------------------------------- the relay
    async def relay(self, client: trio.SocketStream) -> None:
        """Hand one connection to the current child, waiting for it if it is (re)starting."""
        try:
            with trio.move_on_after(WAIT_FOR_CHILD):
                while self.child_port is None and not self.failed:
                    await self.changed.wait()
        except BaseException:  # stopped while waiting: the connection is closed with the rest
            await trio.aclose_forcefully(client)
            raise
        unavailable = (
            f"trisails: the app in {self.folder} is not running (it failed to start: see the terminal); "
            "save a fix to restart it\n"
        )
        await _relay.relay(client, self.child_port, unavailable)

    # ------------------------------------------------------------------------------------- the session
    async def run(self, host: str, port: int, scheme: str = "http") -> None:
        """Hold ``host:port``, keep a child serving, restart it on changes, stop on SIGINT or SIGTERM.
        ``scheme`` is only what the URL printed says (``https`` when the child serves TLS)."""
        import watchfiles

        listeners, bound = await _relay.open_listeners(host, port)
        url = f"{scheme}://{host}:{bound}" if ":" not in host else f"{scheme}://[{host}]:{bound}"
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                await self.start_child()
                nursery.start_soon(_relay.serve, listeners, self.relay)
                print(
                    f"trisails: serving {self.folder} on {url} (Ctrl-C to stop), restarting it when a file "
                    "under it changes",
                    flush=True,
                )

                async def watch() -> None:
                    class AppFilter(watchfiles.PythonFilter):
                        """Python files, outside .tmp/ and the folders watchfiles ignores anyway."""

                        ignore_dirs = (*watchfiles.DefaultFilter.ignore_dirs, ".tmp")

                    changes_filter = AppFilter()
                    async for changes in watchfiles.awatch(
                        self.folder, watch_filter=changes_filter, debounce=DEBOUNCE_MS, stop_event=self.stopping
                    ):
                        changed = sorted({_relative(path, self.folder) for _, path in changes})
                        print(f"trisails: {', '.join(changed)} changed; restarting the app", flush=True)
                        await self.stop_child()
                        await self.start_child()

                nursery.start_soon(watch)
                async for signum in signals:
                    print(f"trisails: received {signal.Signals(signum).name}; lowering", flush=True)
                    break
                self.stopping.set()  # the watcher's thread ends within a step
                await self.stop_child()
                for listener in listeners:
                    await listener.aclose()
                nursery.cancel_scope.cancel()


def _echo(line: bytes) -> None:
    sys.stdout.write(line.decode(errors="replace") + "\n")
    sys.stdout.flush()


def _relative(path: str, folder: Path) -> str:
    try:
        return str(Path(path).relative_to(folder))
    except ValueError:
        return path


def reload_command(args: argparse.Namespace, argv: list[str]) -> int:
    """``python -m trisails [APP] --reload``: serve the app folder, restarting it on changes (exit 0 on
    Ctrl-C; 2 when ``watchfiles`` is missing or the port cannot be had)."""
    from ._app import App
    from ._cli import DEMO, _folder_here, _port_problem
    from ._config import HttpSettings
    from ._startup import format_problem

    try:
        import watchfiles  # noqa: F401
    except ImportError:
        print(format_problem(ReloadUnavailable(
            "--reload needs the watchfiles package, which is not installed",
            hint="pip install 'trisails[reload]' (or serve without --reload).",
        )), file=sys.stderr)
        return 2
    from ._config import LOG_LEVELS

    logging.basicConfig(level=LOG_LEVELS[args.log_level or "info"], format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # it says "N changes detected"; we say which
    folder = (Path(args.app_dir) if args.app_dir else _folder_here() or DEMO).resolve()
    http = HttpSettings()
    try:  # where to listen, from config/http.py; a broken app still gets its port, and its message from the child
        http = App.load(folder, environment="production" if args.prod else None).settings.http
    except AppLoadError:
        pass
    host = args.host or http.host
    port = http.port if args.port is None else args.port
    problem = _port_problem(host, port)
    if problem is not None:
        print(format_problem(AppLoadError(problem[0], hint=problem[1])), file=sys.stderr)
        return 2
    child_args: list[Any] = [str(folder), "--port", "0", "--host", "127.0.0.1"]
    if args.prod:
        child_args.append("--prod")
    if args.redis:
        child_args += ["--redis", args.redis]
    if args.certfile or args.keyfile:  # TLS ends in the child: the relay passes the bytes as they are
        child_args += ["--certfile", str(Path(args.certfile or "").resolve()), "--keyfile", str(Path(args.keyfile or "").resolve())]
    if args.log_level:
        child_args += ["--log-level", args.log_level]
    scheme = "https" if args.certfile or http.ssl else "http"
    trio.run(Supervisor(folder, child_args).run, host, port, scheme)
    return 0
