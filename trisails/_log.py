"""``sails.log``: Sails' logger methods, over Python's :mod:`logging`.

``sails.log.info("user", user_id, "joined")`` writes one line at ``INFO`` on the logger ``trisails.app``,
its arguments joined by spaces as Sails (and ``console.log``) join them; the line is only built when
the level is enabled. ``verbose`` and ``silly`` are a level below ``debug`` (5, named ``VERBOSE``).
The level comes from ``config/log.py`` or ``--log-level`` when the app runs under ``python -m
trisails``, and from your own :mod:`logging` setup otherwise.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["VERBOSE", "SailsLog"]

VERBOSE = 5
logging.addLevelName(VERBOSE, "VERBOSE")


class SailsLog:
    """The methods of Sails' ``sails.log``, each writing one line on the ``trisails.app`` logger."""

    def __init__(self, name: str = "trisails.app") -> None:
        self.logger = logging.getLogger(name)
        """The :class:`logging.Logger` the lines go to, for handlers and levels of your own."""

    def _write(self, level: int, args: tuple[Any, ...]) -> None:
        if self.logger.isEnabledFor(level):
            self.logger.log(level, "%s", " ".join(str(a) for a in args), stacklevel=3)

    def error(self, *args: Any) -> None:
        """A line at ``ERROR``: something failed and someone should look."""
        self._write(logging.ERROR, args)

    def warn(self, *args: Any) -> None:
        """A line at ``WARNING``: something unexpected that the app survived."""
        self._write(logging.WARNING, args)

    warning = warn

    def info(self, *args: Any) -> None:
        """A line at ``INFO``: what the app did, worth reading in normal operation."""
        self._write(logging.INFO, args)

    def debug(self, *args: Any) -> None:
        """A line at ``DEBUG``: detail for while you develop (Python ranks it below ``info``)."""
        self._write(logging.DEBUG, args)

    def verbose(self, *args: Any) -> None:
        """A line at ``VERBOSE`` (5), below ``debug``: the most detail."""
        self._write(VERBOSE, args)

    silly = verbose

    def __call__(self, *args: Any) -> None:
        """``sails.log(...)`` is ``sails.log.debug(...)``, as in Sails."""
        self._write(logging.DEBUG, args)

    def __repr__(self) -> str:
        return f"<sails.log on {self.logger.name!r}>"
