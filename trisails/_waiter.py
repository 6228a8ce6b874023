"""A one-shot answer that one task waits for and another delivers: an ack's arguments, or an error.

Used wherever trisails waits for the peer (the server's ``Socket.call``, the client's acks and
``wait_for``): the waiting task awaits :attr:`Waiter.done`, then reads :attr:`args` or raises
:attr:`error`. The first delivery wins; later ones are ignored, so a late ack after a disconnect is
harmless.
"""

from __future__ import annotations

from typing import Any

import trio

__all__ = ["Waiter"]


class Waiter:
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
