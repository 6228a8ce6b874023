"""Counting work in progress, so that shutting down can let it finish first."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio

__all__ = ["InFlight"]


class InFlight:
    """How many requests are being handled right now, and a way to wait until there are none."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = trio.Event()
        self._idle.set()

    @contextmanager
    def track(self) -> Iterator[None]:
        """Count the enclosed work as in flight."""
        if self.count == 0:
            self._idle = trio.Event()
        self.count += 1
        try:
            yield
        finally:
            self.count -= 1
            if self.count == 0:
                self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is in flight, at most ``timeout`` seconds; False if time ran out first."""
        with trio.move_on_after(timeout):
            await self._idle.wait()
            return True
        return False
