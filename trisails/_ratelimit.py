"""A token bucket: how many requests one client may make, on average and in a burst."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """``burst`` tokens to start with, ``rate`` more each second up to ``burst``; a request takes one.

    A client that keeps to ``rate`` requests a second is never refused; one that sends a burst may send
    ``burst`` at once, then waits for the bucket to refill.
    """

    __slots__ = ("rate", "burst", "_clock", "_tokens", "_last")  # one per socket: kept small

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def take(self) -> bool:
        """Use one token if there is one; False means "too many requests, for now"."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until the next token."""
        return max(0.0, (1 - self._tokens) / self.rate)
