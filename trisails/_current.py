"""``sails``: the running app, reachable from anywhere inside it, as in a Sails controller.

``from trisails import sails`` then ``sails.sockets.broadcast(...)``. It resolves the App whose
:meth:`~trisails.App.lift` is running the current task (a context variable that every task of the app
inherits, worker threads of plain ``def`` actions included), so it is not global state: two apps in one
process each see their own.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

from ._errors import TrisailsError
from ._log import SailsLog

if TYPE_CHECKING:
    from ._app import App
    from ._config import Settings
    from .realtime.presence import Presence
    from .realtime.server import RealtimeServer
    from .sockets import Sockets

__all__ = ["NoAppRunning", "current_app", "sails"]

current_app: ContextVar[App] = ContextVar("trisails_current_app")


class NoAppRunning(TrisailsError):
    """``sails`` was used outside a lifted app; use ``req.app`` or lift the app first."""


class _Sails:
    """The running app's parts under Sails' names: ``sails.sockets``, ``sails.io``, ``sails.config``
    (and ``sails.presence``, which Sails does not have)."""

    @property
    def app(self) -> App:
        try:
            return current_app.get()
        except LookupError:
            raise NoAppRunning(
                "sails is only available inside a lifted app (in actions, handlers and hooks); "
                "outside one, use the App object itself"
            ) from None

    @property
    def sockets(self) -> Sockets:
        return self.app.sockets

    @property
    def presence(self) -> Presence:
        return self.app.presence

    @property
    def io(self) -> RealtimeServer:
        return self.app.io

    @property
    def config(self) -> Settings:
        return self.app.settings

    @property
    def log(self) -> SailsLog:
        """Sails' logger methods (``sails.log.info(...)``, ``warn``, ``error``, ``debug``, ``verbose``)
        over Python's :mod:`logging`; usable with no app running too."""
        return _LOG

    def __repr__(self) -> str:
        try:
            return f"<sails: {self.app!r}>"
        except NoAppRunning:
            return "<sails: no app running>"


_LOG = SailsLog()  # stateless: a name for the ``trisails.app`` logger
sails = _Sails()
