"""``python -m trisails [APP_DIR] [--host HOST] [--port PORT] [--certfile PEM --keyfile PEM] [--prod] [--log-level LEVEL]``: serve an app folder.

Also ``python -m trisails new NAME`` (a new app folder) and ``python -m trisails generate
model|controller|action|policy NAME`` (a file of an app folder); a folder named like a command is
served as ``python -m trisails ./new``.

With no folder it serves the current directory when that is an app folder (it has ``api/`` or
``config/``), else the built-in demo app. Ctrl-C or SIGTERM lowers the app cleanly (every socket is
told, in-flight requests finish) and the process exits 0.
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import trio

from ._app import App
from ._config import LOG_LEVELS, check_redis
from ._errors import AppLoadError, ConfigError
from .realtime import _serving
from ._scaffold import KINDS, ScaffoldError, generate, new_app
from ._startup import format_problem, listen_problem, locate, show_path, source_line

DEMO = Path(__file__).parent / "demo"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trisails",
        description="Serve a trisails app folder.",
        epilog="Other commands: 'python -m trisails new NAME' makes an app folder; 'python -m trisails generate "
        "model|controller|action|policy NAME' adds to one; 'python -m trisails console [APP]' opens a REPL in "
        "the lifted app (each has --help).",
    )
    parser.add_argument(
        "app_dir", nargs="?",
        help="the app folder (default: the current directory if it has api/ or config/, else the built-in demo app)",
    )
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port to listen on (default 1337)")
    parser.add_argument(
        "--certfile", default=None, metavar="PEM",
        help="serve https and wss on the port with this certificate chain (needs --keyfile; overrides http.ssl)",
    )
    parser.add_argument("--keyfile", default=None, metavar="PEM", help="the private key of --certfile")
    parser.add_argument("--prod", action="store_true", help="production mode (same as TRISAILS_ENV=production)")
    parser.add_argument(
        "--redis", default=None, metavar="URL",
        help="share rooms, broadcasts and sessions with other processes through Redis (redis://host:port/db)",
    )
    parser.add_argument(
        "--reload", action="store_true",
        help="restart the app when a file under its folder changes, keeping the port open meanwhile (needs "
        "pip install 'trisails[reload]')",
    )
    parser.add_argument(
        "--log-level", default=None, choices=list(LOG_LEVELS), metavar="LEVEL",
        help="what to log on stderr: verbose, debug, info, warn, error or silent (default: config/log.py's "
        "level, else info); debug also prints the traceback of a startup failure",
    )
    return parser


#: ``gc.set_threshold`` for the served app: CPython's defaults for the young generations, and a full
#: collection considered after 100 collections of the middle one rather than 10.
FULL_COLLECTION_THRESHOLDS = (700, 10, 100)


async def serve_until_signalled(app: App, host: str | None, port: int | None, serving: trio.Event | None = None) -> None:
    """Lift ``app`` and lower it on the first SIGINT or SIGTERM; later signals only say to wait.
    ``serving`` is set once the app listens: what fails after that is no startup failure."""
    # What the receiver restores when it closes: once lowered, a late signal must not turn a clean
    # exit into a kill.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def serve(task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
                await app.lift(host, port, task_status=task_status)
                nursery.cancel_scope.cancel()  # lowered: stop listening for signals

            url = await nursery.start(serve)
            if serving is not None:
                serving.set()
            # What loading and lifting made (modules, routes, settings) lives as long as the process:
            # moved out of the collector's way, a full collection no longer walks it again each time
            # the sockets' objects grow the heap (about a twentieth of a new connection's cost).
            gc.collect()  # (garbage of the startup is freed, not frozen)
            gc.freeze()
            # A server's heap grows by long-lived objects (idle sockets), and CPython walks the whole heap
            # each time it has grown by a quarter: while 10,000 sockets connected, those full collections
            # took a third of the server's CPU. One at most every 700,000 new objects instead (young
            # cycles are still collected as often as before; old ones wait a little longer).
            gc.set_threshold(*FULL_COLLECTION_THRESHOLDS)
            print(f"trisails: serving {app.root or 'the demo app'} on {url} (Ctrl-C to stop)", flush=True)
            log = logging.getLogger("trisails")
            async for signum in signals:
                name = signal.Signals(signum).name
                if app.draining:
                    log.warning("received %s again; still lowering (in-flight requests get a few seconds)", name)
                else:
                    log.info("received %s; lowering", name)
                    app.lower()


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 after a clean stop, 2 for a startup failure)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "new":
        return new_command(argv[1:])
    if argv and argv[0] == "generate":
        return generate_command(argv[1:])
    if argv and argv[0] == "console":
        return console_command(argv[1:])
    args = build_parser().parse_args(argv)
    if args.reload:
        from ._reload import reload_command

        return reload_command(args, [a for a in argv if a != "--reload"])
    return _run(args, serve_until_signalled, args.port)


def console_command(argv: list[str]) -> int:
    """``python -m trisails console [APP]``: the app lifted, and a REPL inside it (see :mod:`trisails._console`)."""
    from ._console import console_session

    parser = build_parser()
    parser.prog = "python -m trisails console"
    parser.description = (
        "Lift the app and open a Python REPL inside it: sails, app, trio and the models are at hand, and "
        "await works. It listens on a free port unless --port says which (the app may be served meanwhile)."
    )
    parser.epilog = None
    args = parser.parse_args(argv)
    if args.reload:
        parser.error("--reload serves the app; the console does not reload")
    return _run(args, console_session, 0 if args.port is None else args.port)


def _run(args: argparse.Namespace, session: Any, port_arg: int | None) -> int:
    """Load the app folder the arguments name, check the port, and run ``session(app, host, port,
    serving)`` in trio; a failure before ``serving`` is set is a startup failure (one message, exit 2)."""
    level = LOG_LEVELS[args.log_level or "info"]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    debug = level <= logging.DEBUG
    folder = Path(args.app_dir) if args.app_dir else _folder_here() or DEMO
    try:
        app = App.load(folder, environment="production" if args.prod else None)
        if args.redis:
            app.settings.sockets.redis_url = args.redis
            try:
                check_redis(args.redis)
            except ConfigError as error:
                raise AppLoadError(f"--redis: {error}") from None
        use_certificate(app, args)
    except AppLoadError as error:
        return _refuse(error, debug)
    if args.log_level is None:  # the command line wins over config/log.py
        level = LOG_LEVELS[app.settings.log.level]
        logging.getLogger().setLevel(level)
        debug = level <= logging.DEBUG
    host = args.host or app.settings.http.host
    port = app.settings.http.port if port_arg is None else port_arg
    problem = _port_problem(host, port)
    if problem is not None:
        return _refuse(AppLoadError(problem[0], hint=problem[1]), debug)
    serving = trio.Event()
    try:
        trio.run(session, app, args.host, port_arg, serving)
    except Exception as error:  # found at lift: production settings, the datastore, bootstrap, the port
        if serving.is_set():
            raise  # not a startup failure: the traceback is the most useful thing to show
        return _refuse(_lift_failure(error, folder, host, port), debug, cause=error)
    return 0


def use_certificate(app: App, args: argparse.Namespace) -> None:
    """Put ``--certfile``/``--keyfile`` in ``app.settings.http.ssl``, and check whichever certificate
    the app will use now, before anything is opened: a wrong path is a startup failure of one line."""
    if (args.certfile is None) != (args.keyfile is None):
        raise AppLoadError(
            "--certfile and --keyfile go together",
            hint="Give both: --certfile cert.pem --keyfile key.pem (the certificate chain and its private key).",
        )
    if args.certfile is not None:
        app.settings.http.ssl = {"cert": str(Path(args.certfile).resolve()), "key": str(Path(args.keyfile).resolve())}
    try:
        app._ssl_context()
    except ConfigError as error:
        raise AppLoadError(str(error)) from None


def new_command(argv: list[str]) -> int:
    """``python -m trisails new NAME``: make the app folder NAME (0), or say why not (2)."""
    parser = argparse.ArgumentParser(
        prog="python -m trisails new",
        description="Make a new app folder: config/, api/ (a model, a controller), assets/ (a live page) and "
        "tests/ (a test that lifts the app). An existing, non-empty folder is never written over.",
    )
    parser.add_argument("name", help="the folder to create; its last part is the app's name")
    args = parser.parse_args(argv)
    target = Path(args.name)
    try:
        new_app(target)
    except ScaffoldError as error:
        return _scaffold_refused(error)
    except OSError as error:
        print(f"trisails: cannot write {target}: {error.strerror or error}", file=sys.stderr)
        return 2
    print(f"trisails: made the app {target.name} in {show_path(target.resolve())}")
    print(f"  cd {show_path(target.resolve())} && python -m trisails      # then open http://127.0.0.1:1337/")
    print("  python -m pytest tests                    # its test lifts it and talks to it")
    return 0


def generate_command(argv: list[str]) -> int:
    """``python -m trisails generate KIND NAME``: add a model, controller, action or policy to an app folder."""
    parser = argparse.ArgumentParser(
        prog="python -m trisails generate",
        description="Add to an app folder (the current one, or --app): 'model user' writes api/models/user.py; "
        "'controller user [ACTION ...]' writes api/controllers/user.py; 'action user/sign_up' adds that action "
        "to its controller (making the file if needed); 'policy is_logged_in' writes api/policies/is_logged_in.py. "
        "Nothing is ever written over.",
    )
    parser.add_argument("kind", choices=KINDS, help="what to generate")
    parser.add_argument("name", help="its name: user, BlogPost, blog-post; an action is controller/action")
    parser.add_argument("actions", nargs="*", help="for a controller: the actions it starts with")
    parser.add_argument("--app", default=".", metavar="DIR", help="the app folder (default: the current directory)")
    args = parser.parse_args(argv)
    if args.actions and args.kind != "controller":
        parser.error(f"only a controller takes a list of actions; {args.kind} takes one NAME")
    try:
        written = generate(args.kind, args.name, Path(args.app).resolve(), args.actions)
    except ScaffoldError as error:
        return _scaffold_refused(error)
    except OSError as error:
        print(f"trisails: cannot write in {args.app}: {error.strerror or error}", file=sys.stderr)
        return 2
    for item in written:
        print(f"trisails: wrote {show_path(item.path)}: {item.what}")
    return 0


def _scaffold_refused(error: ScaffoldError) -> int:
    print(f"trisails: {error}", file=sys.stderr)
    if error.hint:
        print(f"  {error.hint}", file=sys.stderr)
    return 2


def _folder_here() -> Path | None:
    """The current directory, when it is an app folder (it has ``api/`` or ``config/``): run inside
    one, ``python -m trisails`` serves it, as ``sails lift`` does."""
    here = Path.cwd()
    return here if (here / "api").is_dir() or (here / "config").is_dir() else None


def _refuse(error: AppLoadError, debug: bool, cause: BaseException | None = None) -> int:
    """Print ``error`` as the one startup message (the traceback first, with --log-level debug)."""
    if debug:
        traceback.print_exception(cause if cause is not None else error, file=sys.stderr)
    print(format_problem(error), file=sys.stderr)
    if not debug:
        print("  (the full traceback: --log-level debug)", file=sys.stderr)
    return 2


def _port_problem(host: str, port: int) -> tuple[str, str] | None:
    """Whether ``host:port`` can be listened on, tried before the lift opens anything (the database, Redis)."""
    error = _serving.probe_listen(host, port)
    return listen_problem(error, host, port) if error is not None else None


def _lift_failure(error: BaseException, folder: Path, host: str, port: int) -> AppLoadError:
    """What stopped the lift, as one message: a setting, the port, or the app's own code (bootstrap)."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    if isinstance(error, AppLoadError):
        return error
    if isinstance(error, ConfigError):
        return AppLoadError(f"cannot lift {folder}: {error}")
    if isinstance(error, OSError):
        problem = listen_problem(error, host, port)
        if problem is not None:
            return AppLoadError(problem[0], hint=problem[1])
    file, line = locate(error, folder)
    return AppLoadError(
        f"cannot lift {folder}: {type(error).__name__}: {error}",
        file=file,
        line=line,
        excerpt=source_line(file, line) if file and line else None,
        hint="Fix the error that line raised (config/bootstrap.py runs when the app lifts)." if file else None,
    )
