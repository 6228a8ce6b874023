"""``python -m trisails [APP_DIR] [--host HOST] [--port PORT] [--prod]``: serve an app folder.

With no folder it serves the built-in demo app. Ctrl-C or SIGTERM lowers the app cleanly (every socket is
told, in-flight requests finish) and the process exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

import trio

from ._app import App
from ._errors import AppLoadError, ConfigError

DEMO = Path(__file__).parent / "demo"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trisails", description="Serve a trisails app folder.")
    parser.add_argument("app_dir", nargs="?", help="the app folder (default: the built-in demo app)")
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port to listen on (default 1337)")
    parser.add_argument("--prod", action="store_true", help="production mode (same as TRISAILS_ENV=production)")
    parser.add_argument(
        "--redis", default=None, metavar="URL",
        help="share rooms, broadcasts and sessions with other processes through Redis (redis://host:port/db)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser


async def serve_until_signalled(app: App, host: str | None, port: int | None) -> None:
    """Lift ``app`` and lower it on the first SIGINT or SIGTERM; later signals only say to wait."""
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
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    folder = Path(args.app_dir) if args.app_dir else DEMO
    try:
        app = App.load(folder, environment="production" if args.prod else None)
    except AppLoadError as error:
        print(f"trisails: {error}", file=sys.stderr)
        return 2
    if args.redis:
        app.settings.sockets.redis_url = args.redis
    try:
        trio.run(serve_until_signalled, app, args.host, args.port)
    except (ConfigError, BaseExceptionGroup) as error:  # found at lift: production settings, the datastore
        problem = _config_error(error)
        if problem is None:
            raise
        print(f"trisails: cannot lift {folder}: {problem}", file=sys.stderr)
        return 2
    return 0


def _config_error(error: BaseException) -> ConfigError | None:
    """The ConfigError that stopped the lift, unwrapped from the nurseries' exception groups."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error if isinstance(error, ConfigError) else None
