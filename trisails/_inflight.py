"""Counting work in progress, so that shutting down can let it finish first."""

from __future__ import annotations

import trio

__all__ = ["InFlight"]


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
