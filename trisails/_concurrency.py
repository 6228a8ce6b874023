"""The small concurrency helpers every layer shares: calling maybe-async code, hopping onto the loop,
one-shot answers, and counting work in flight.

Each is a few lines, and each exists because the same need turned up in several layers: handlers and
hooks may be plain or async functions (:func:`call`); room and socket state belongs to the trio thread
while a plain ``def`` action runs in a worker thread (:func:`on_loop`); waiting for a peer's ack needs a
value delivered by another task (:class:`Waiter`); shutting down waits for requests in flight
(:class:`InFlight`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import trio

__all__ = ["InFlight", "Waiter", "call", "on_loop"]

F = TypeVar("F", bound=Callable[..., Any])


async def call(fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn(*args)`` and await the result if it is awaitable: handlers may be plain or async."""
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def on_loop(method: F) -> F:
    """Make ``method`` callable from a worker thread (a plain ``def`` action): it always runs on the loop.

    Room and socket state belong to the trio thread; a call from elsewhere hops there and waits.
    """

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if trio.lowlevel.in_trio_run():
            return method(*args, **kwargs)
        try:
            trio.from_thread.check_cancelled()  # RuntimeError: not a trio worker thread
        except RuntimeError:
            return method(*args, **kwargs)  # no running app to protect (plain code, a sync test)
        return trio.from_thread.run_sync(functools.partial(method, *args, **kwargs))

    return wrapper  # type: ignore[return-value]


class Waiter:
    """A one-shot answer that one task waits for and another delivers: an ack's arguments, or an error.

    The waiting task awaits :attr:`done`, then reads :attr:`args` or raises :attr:`error`. The first
    delivery wins; later ones are ignored, so a late ack after a disconnect is harmless.
    """

    __slots__ = ("args", "done", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.args: list[Any] = []
        self.error: BaseException | None = None

    def resolve(self, args: list[Any]) -> None:
        """Deliver the answer (if nothing was delivered yet)."""
        if not self.done.is_set():
            self.args = args
            self.done.set()

    def fail(self, error: BaseException) -> None:
        """Deliver an error instead (if nothing was delivered yet)."""
        if not self.done.is_set():
            self.error = error
            self.done.set()


class InFlight:
    """How many requests are being handled right now, and a way to wait until there are none."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = trio.Event()
        self._idle.set()

    def track(self) -> InFlight:
        """Count the enclosed work as in flight: ``with in_flight.track(): ...`` (on every request,
        so a plain context manager rather than a generator)."""
        return self

    def __enter__(self) -> None:
        if self.count == 0:
            self._idle = trio.Event()
        self.count += 1

    def __exit__(self, *exc_info: object) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is in flight, at most ``timeout`` seconds; False if time ran out first."""
        with trio.move_on_after(timeout):
            await self._idle.wait()
            return True
        return False
