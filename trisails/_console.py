"""``python -m trisails console [APP]``: Sails' ``sails console``, a REPL inside the lifted app.

The app lifts as it would to serve (HTTP and sockets on a port, its bootstrap run), and a Python REPL
opens with ``sails``, ``app``, ``trio`` and every model class at hand. ``await`` works at the prompt::

    >>> await User.create({"name": "ann"})
    >>> sails.sockets.blast("announcement", {"text": "hello from the console"})

How: the prompt reads lines in a worker thread (``input`` blocks), and each statement runs on the
event loop, in a task of its own where ``sails`` is this app (``trio.from_thread.run``), so what it
touches (rooms, sockets, models) is touched from the loop, as in an action. A statement that takes
long holds the loop while it runs, as a slow action would. Ctrl-D (or ``exit()``) lowers the app and
ends the command with status 0.
"""

from __future__ import annotations

import ast
import code
import inspect
import sys
import traceback
from typing import Any

import trio

from ._app import App
from ._current import current_app, sails

__all__ = ["console_session"]


class _AppConsole(code.InteractiveConsole):
    """An interactive console whose statements may ``await``, and run on the app's event loop."""

    def __init__(self, app: App, namespace: dict[str, Any]) -> None:
        super().__init__(namespace, filename="<trisails console>")
        self.app = app
        self.compile.compiler.flags |= ast.PyCF_ALLOW_TOP_LEVEL_AWAIT

    def runcode(self, code_object: Any) -> None:
        """Run one compiled statement on the loop; show its exception as the REPL does, never end on it."""
        try:
            trio.from_thread.run(self._run_on_loop, code_object)
        except SystemExit:
            raise
        except BaseException as error:
            # from the statement typed on: the frames of trio and of this console say nothing to the user
            tb = error.__traceback__
            while tb is not None and tb.tb_frame.f_code.co_filename != self.filename:
                tb = tb.tb_next
            self.write("".join(traceback.format_exception(type(error), error, tb or error.__traceback__)))

    async def _run_on_loop(self, code_object: Any) -> None:
        token = current_app.set(self.app)
        try:
            result = eval(code_object, self.locals)  # noqa: S307 - the user's own input, at their prompt
            if inspect.iscoroutine(result):
                await result
        finally:
            current_app.reset(token)


def namespace_of(app: App) -> dict[str, Any]:
    """What the prompt starts with: ``sails``, ``app``, ``trio``, and the models by class name."""
    names: dict[str, Any] = {"sails": sails, "app": app, "trio": trio, "__name__": "__console__"}
    for binding in app.models.values():
        names[binding.declaration.__name__] = binding.declaration
    return names


async def console_session(app: App, host: str | None, port: int | None, serving: trio.Event | None = None) -> None:
    """Lift ``app``, run the REPL until it ends (Ctrl-D, ``exit()``), then lower the app."""
    async with trio.open_nursery() as nursery:
        url = await nursery.start(app.lift, host, port)
        if serving is not None:
            serving.set()
        namespace = namespace_of(app)
        models = sorted(n for n in namespace if n[:1].isupper())
        example = f"await {models[0]}.find()" if models else "await trio.sleep(0)"
        banner = (
            f"trisails console: {app.root or 'the demo app'} lifted on {url}\n"
            f"At hand: sails, app, trio{''.join(', ' + m for m in models)}. await works: {example}\n"
            "Ctrl-D (or exit()) lowers the app and leaves."
        )
        console = _AppConsole(app, namespace)

        def interact() -> None:
            try:
                console.interact(banner=banner, exitmsg="trisails console: lowering the app")
            except SystemExit:
                print("trisails console: lowering the app", flush=True)

        try:
            await trio.to_thread.run_sync(interact, abandon_on_cancel=True)
        finally:
            sys.stdout.flush()
            app.lower()
