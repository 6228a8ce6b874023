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
import types
from collections.abc import Callable
from typing import Any, TypeVar

import trio

__all__ = ["InFlight", "Waiter", "call", "is_async", "is_awaitable", "on_loop"]

F = TypeVar("F", bound=Callable[..., Any])


#: Results that are never awaitable, told apart by type alone (``inspect.isawaitable`` asks an ABC).
_PLAIN_RESULTS = frozenset({type(None), dict, list, tuple, str, int, float, bool, bytes})


def is_awaitable(value: Any) -> bool:
    """``inspect.isawaitable(value)``, answered by type for the usual results (a coroutine, or plain
    data), since it is asked of every handler's and action's result."""
    kind = type(value)
    return kind is types.CoroutineType or (kind not in _PLAIN_RESULTS and inspect.isawaitable(value))


async def call(fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn(*args)`` and await the result if it is awaitable: handlers may be plain or async."""
    result = fn(*args)
    if is_awaitable(result):
        result = await result
    return result


def is_async(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` is an ``async def`` (or an object whose ``__call__`` is); a plain function's code
    flags are read directly, since this is asked for every handler and action."""
    if type(fn) is types.FunctionType:
        return bool(fn.__code__.co_flags & inspect.CO_COROUTINE)
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))


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
