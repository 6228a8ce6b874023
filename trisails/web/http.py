"""Plain HTTP: the router on quart-trio, then the app's ``assets/``, then the built-in browser client.

A request the router matches runs its action exactly as a socket request would (``req.is_socket`` is
false). A GET nothing matches is looked up in the app's ``assets/`` folder (``/`` serves
``index.html``), then at ``/js/dependencies/sails.io.js``, where trisails serves its own browser client
unless the app ships a file there itself. Everything else is a 404 ``"Not Found"``.

What ``assets/`` serves is limited to what was put there to be public: a path with a segment that
starts with a dot (``/.env``, ``/.git/config``) is a 404, except the ``/.well-known/`` folder of
RFC 8615; and a symlink that leads out of ``assets/`` is a 404 unless ``http.assets_symlinks_outside``
allows it. Static answers never set a cookie, so a shared cache that keeps one (they are
``Cache-Control: public``) never hands one session to many clients; the one exception is a page
(``text/html``), which brings a new visitor its session cookie so that the page's socket shares the
session, as in Sails, and is therefore sent ``Cache-Control: private, no-cache``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from quart import Response as QuartResponse
from werkzeug.exceptions import HTTPException
from quart import request, send_file
from werkzeug.security import safe_join

from ..protocol.virtual import nested_deeper_than, parse_query
from ..protocol.socketio import _to_json, dumps_json
from .dispatch import dispatch, unsendable
from .request import _UNSET, Request, Response
from .security import cors_headers, preflight_headers
from .sessions import new_sid

if TYPE_CHECKING:
    from .._app import App

__all__ = ["CLIENT_PATH", "install"]

log = logging.getLogger("trisails.web")
access_log = logging.getLogger("trisails.access")

STATIC = Path(__file__).resolve().parents[1] / "static"
CLIENT_PATH = "/js/dependencies/sails.io.js"
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]


def install(app: App) -> None:
    """Route every HTTP request the quart app has no own route for through the trisails router."""

    async def handle(path: str = "") -> QuartResponse:
        return await _handle(app)

    app.http.add_url_rule("/", "trisails", handle, methods=METHODS, provide_automatic_options=False)
    app.http.add_url_rule(
        "/<path:path>", "trisails_path", handle, methods=METHODS, provide_automatic_options=False
    )


async def _handle(app: App) -> QuartResponse:
    started = time.perf_counter()
    response = await _respond(app)
    if app.settings.log.access and access_log.isEnabledFor(logging.INFO):
        access_log.info(
            "%s %s %d %.1fms http %s",
            request.method, request.path, response.status_code, (time.perf_counter() - started) * 1000,
            request.remote_addr or "-",
        )
    return response


async def _respond(app: App) -> QuartResponse:
    production = app.settings.production
    method = request.method
    origin = request.headers.get("origin")
    if method == "OPTIONS" and "access-control-request-method" in request.headers:
        allowed = preflight_headers(app.settings.security, origin)
        if allowed is not None:
            return QuartResponse(b"", status=204, headers=allowed)
    try:
        response = await _answer(app, production, method)
    except HTTPException as refusal:  # quart's own answers about the request (413 for a body too big)
        response = QuartResponse(orjson.dumps(refusal.description), status=refusal.code or 400, headers=_JSON)
    except Exception as error:
        response = _failure(app, error)
    for name, value in cors_headers(app.settings.security, origin).items():
        response.headers[name] = value
    return response


async def _answer(app: App, production: bool, method: str) -> QuartResponse:
    found = app.router.match(method, request.path)
    if found is None and method in ("GET", "HEAD"):
        static = _static_file(app, request.path)
        if static is not None:
            response = await send_file(static)
            if response.mimetype == "text/html":
                # a page: never kept by a shared cache, since it may bring a visitor its own cookie
                response.headers["cache-control"] = "private, no-cache"
                response.headers.pop("expires", None)
                sessions = app.sessions
                if sessions.enabled and sessions.sid_in(request.headers.get("cookie")) is None:
                    # a page gets its session cookie with the page, so its socket shares that session
                    response.headers.add("set-cookie", sessions.set_cookie(new_sid()))
            return response
    try:
        body = await _body(app.settings.http.max_json_depth)
    except ValueError as error:
        res = Response(production=production)
        res.bad_request({"error": "the request body is not valid", "details": str(error)})
        return _to_http(res)
    query_string = request.query_string.decode("latin-1")
    req = Request(
        app=app,
        method=method,
        url=request.path + (f"?{query_string}" if query_string else ""),
        path=request.path,
        query=parse_query(query_string),
        body=body,
        headers={k.lower(): v for k, v in request.headers.items()},
        ip=request.remote_addr or "",
    )
    sessions = app.sessions
    if found is None or not found[0].options.get("builtin"):  # the health check has no session
        await sessions.attach(req, req.headers.get("cookie"))
    res = await dispatch(app.router, req, production=production, policies=app.policies)
    response = _to_http(res, req)
    if req.session is not None and await sessions.save(req.session):
        response.headers.add("set-cookie", sessions.set_cookie(req.session.id))
    return response


async def _body(max_depth: int) -> Any:
    """The request body, parsed: JSON (at most ``max_depth`` levels deep) or form fields.

    ``ValueError`` says why a body cannot be used (answered 400); a body past ``http.max_body_size``
    never gets here (quart answers 413).
    """
    content_type = request.mimetype
    data = await request.get_data()
    if not data:
        return {}
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError as error:
            raise ValueError(f"invalid JSON: {error}") from None
        if nested_deeper_than(parsed, max_depth):
            raise ValueError(f"the JSON is nested more than {max_depth} levels deep (http.max_json_depth)")
        return parsed
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form
        return {key: values[0] if len(values) == 1 else values for key, values in form.lists()}
    return {}


def _static_file(app: App, path: str) -> Path | None:
    """The file of ``assets/`` (or the built-in client) that answers ``path``, resolved, or ``None``."""
    candidates = []
    assets: Path | None = None
    if app.root is not None and not _hidden(path):
        assets = (app.root / "assets").resolve()
        relative = path.lstrip("/") or "index.html"
        joined = safe_join(str(assets), relative)
        if joined is not None:
            candidates += [Path(joined), Path(joined) / "index.html"]
    for candidate in candidates:
        if candidate.is_file():
            real = candidate.resolve()  # what is sent is the file itself, not a link to it
            assert assets is not None
            if real.is_relative_to(assets) or app.settings.http.assets_symlinks_outside:
                return real
            log.info("not serving %s: a symlink out of assets/ (http.assets_symlinks_outside is off)", path)
            return None
    if path == CLIENT_PATH:
        return STATIC / "sails.io.js"
    return None


def _hidden(path: str) -> bool:
    """Whether ``path`` names a dotfile or something in a dot folder (``/.env``, ``/.git/config``):
    never public, whatever ``assets/`` holds. ``/.well-known/`` is public by definition (RFC 8615)."""
    segments = path.split("/")
    if len(segments) > 2 and segments[1] == ".well-known":
        segments = segments[2:]
    return any(segment.startswith(".") for segment in segments)


def _to_http(res: Response, req: Request | None = None) -> QuartResponse:
    body = res.body
    headers = dict(res.headers)
    if body is _UNSET:
        payload, content_type = b"", None
    elif isinstance(body, (bytes, bytearray, memoryview)):
        payload, content_type = bytes(body), "application/octet-stream"
    elif isinstance(body, str) and not res.as_json:
        payload, content_type = body.encode(), "text/html; charset=utf-8"
    else:
        try:
            payload, content_type = _json_payload(body), "application/json; charset=utf-8"
        except (TypeError, ValueError) as error:
            if req is None:
                raise
            failed = unsendable(req, body, production=res._production, error=error)
            return _to_http(failed)
    response = QuartResponse(payload, status=res.status_code, headers=headers)
    if content_type and not any(k.lower() == "content-type" for k in headers):
        response.headers["content-type"] = content_type
    return response


def _json_payload(body: Any) -> bytes:
    """``body`` as JSON with the very encoder socket answers use, so a body that one transport refuses
    (a set, a coroutine, an object) the other refuses too, and with the same 500."""
    try:
        return dumps_json(body)  # the common case, in one step (dates, decimals, UUIDs as sockets write them)
    except TypeError:
        pass
    text, attachments = _to_json(body)  # the socket encoder's fallback (integers past 64 bits), or its refusal
    if attachments:
        raise TypeError("binary data inside a JSON body cannot go over HTTP (send the bytes alone, or base64 them)")
    return text.encode("utf-8")


def _failure(app: App, error: Exception) -> QuartResponse:
    """What HTTP gets when something around the action fails (a session store, say): a 500 in the
    same shape as an action's, JSON, never quart's HTML error page."""
    log.exception("%s %s failed outside its action", request.method, request.path)
    body = "Internal Server Error" if app.settings.production else f"{type(error).__name__}: {error}"
    return QuartResponse(orjson.dumps(body), status=500, headers=_JSON)


_JSON = {"content-type": "application/json; charset=utf-8"}
