"""CSRF tokens and CORS headers: the two request-level protections of Sails' security hook.

CSRF (off by default, as in Sails). A page that a user's browser loads from another site can make the
browser send requests, cookies included, to your app. With ``security.csrf`` on, every request that
changes something (any verb but GET, HEAD and OPTIONS), over HTTP or over a socket, must carry the
session's token in an ``x-csrf-token`` header or a ``_csrf`` parameter; without it the answer is
``403 "Forbidden"`` and the action never runs. The token comes from ``GET /csrfToken`` over HTTP only:
a socket asking gets 400 (404 in production), since a socket opened by another site's page would
otherwise read it. The token is an HMAC of the session id under the app's secret: nothing is stored to
hand one out, so a flood of cookieless ``GET /csrfToken`` costs no memory, and it changes with the
session id (``req.session.regenerate()``).

CORS (for plain HTTP). ``security.cors_allow_origins`` lists the other sites whose pages may read your
HTTP responses; trisails answers their preflight ``OPTIONS`` requests and adds the
``Access-Control-*`` headers. Sockets are not CORS: ``sockets.only_allow_origins`` guards them.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._config import SecuritySettings
    from .request import Request, Response

__all__ = ["SAFE_METHODS", "TOKEN_PATH", "cors_headers", "csrf_ok", "csrf_token", "grant_csrf_token", "preflight_headers"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_PATH = "/csrfToken"
_SECRET_KEY = "_csrfSecret"


def csrf_ok(req: Request) -> bool:
    """Whether ``req`` may run under CSRF protection: a safe verb, or the session's token sent along."""
    if req.method in SAFE_METHODS:
        return True
    if req.session is None:
        return False
    sent = req.headers.get("x-csrf-token") or req.param("_csrf")
    if not isinstance(sent, str) or not sent.isascii():
        return False
    if hmac.compare_digest(sent, req.app.sessions.csrf_token(req.session.id)):
        return True
    # a token handed out before tokens were derived (kept in the session) stays good for its session
    legacy = req.session.get(_SECRET_KEY)
    return isinstance(legacy, str) and legacy.isascii() and hmac.compare_digest(sent, legacy)


def csrf_token(req: Request) -> str:
    """The CSRF token of ``req``'s session (what ``GET /csrfToken`` answers and views get as ``_csrf``):
    derived from the session id, so nothing is put in the session and nothing is stored."""
    assert req.session is not None
    return req.app.sessions.csrf_token(req.session.id)


def grant_csrf_token(req: Request, res: Response) -> None:
    """``GET /csrfToken``: the session's CSRF token as ``{"_csrf": token}``, over HTTP only."""
    if req.is_socket:
        if req.app.settings.production:
            res.not_found()
        else:
            res.bad_request(
                "Cannot access CSRF token via socket request.  Instead, send an HTTP request (i.e. XHR) to this endpoint."
            )
        return
    if req.session is None:
        res.server_error("CSRF protection needs sessions: turn session.enabled back on")
        return
    token = csrf_token(req)  # nothing is put in the session: nothing stored
    res.set("cache-control", "no-store")
    res.ok({"_csrf": token})


def cors_headers(settings: SecuritySettings, origin: str | None) -> dict[str, str]:
    """The ``Access-Control-*`` headers for a response to a page from ``origin`` (none if not allowed)."""
    if origin is None or not _allowed(settings, origin):
        return {}
    headers = {"access-control-allow-origin": origin, "vary": "Origin"}
    if "*" in settings.cors_allow_origins and not settings.cors_allow_credentials:
        headers = {"access-control-allow-origin": "*"}
    if settings.cors_allow_credentials:
        headers["access-control-allow-credentials"] = "true"
    if settings.cors_expose_headers:
        headers["access-control-expose-headers"] = ", ".join(settings.cors_expose_headers)
    return headers


def preflight_headers(settings: SecuritySettings, origin: str | None) -> dict[str, str] | None:
    """The answer's headers to a CORS preflight from ``origin``, or ``None`` if that page is not allowed."""
    headers = cors_headers(settings, origin)
    if not headers:
        return None
    headers["access-control-allow-methods"] = ", ".join(settings.cors_allow_methods)
    headers["access-control-allow-headers"] = ", ".join(settings.cors_allow_headers)
    headers["access-control-max-age"] = "600"
    return headers


def _allowed(settings: SecuritySettings, origin: str) -> bool:
    return "*" in settings.cors_allow_origins or origin in settings.cors_allow_origins
