"""``req`` and ``res``: one request/response pair for HTTP and socket requests alike.

An action never needs to know which transport carried its request (``req.is_socket`` tells it, if it
cares). ``res`` only records what the action decided: the status, the headers, the body. The HTTP side
turns that into an HTTP response; the socket side into a JWR ack. The default bodies follow Sails'
default responses (``res.ok()`` answers ``"OK"``, ``res.not_found()`` ``"Not Found"``, ...).
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._app import App
    from ..realtime.server import Socket
    from .sessions import Session

__all__ = ["Request", "Response"]

_UNSET: Any = object()


class Request:
    """The request an action receives (``req``)."""

    def __init__(
        self,
        *,
        app: App,
        method: str,
        url: str,
        path: str,
        query: dict[str, Any],
        body: Any,
        headers: dict[str, str],
        ip: str,
        socket: Socket | None = None,
    ) -> None:
        self.app = app
        self.method = method.upper()
        """The verb, upper case (``"GET"``)."""
        self.url = url
        """The path with its query string, as requested (``/user?limit=2``)."""
        self.path = path
        self.query = query
        """The URL's query parameters (a repeated name gives a list). Never the body."""
        self.body = body
        """The request body: JSON or form fields over HTTP, ``data`` of a virtual request."""
        self.headers = headers
        """Request headers with lower-case names."""
        self.ip = ip
        self.socket = socket
        """The :class:`~trisails.Socket` a virtual request came from; ``None`` over HTTP."""
        self.params: dict[str, Any] = {}
        """Route parameters: ``{"id": "7"}`` for ``/user/:id``."""
        self.options: dict[str, Any] = {}
        """Options the route bound to this request (a route target dict's extra keys)."""
        self.action: str | None = None
        """The name of the action the request was routed to (``"say/hello"``, ``"user/find"``), as Sails'
        ``req.options.action``; ``None`` until it is routed, and for a request no route matched."""
        self.rejoin: bool | None = None
        """Whether a reconnecting trisails client should send this request again to get its rooms back:
        ``None`` (the default) when the request joined or left a room, ``False`` never. Writes set it to
        ``False``, so a reconnect never repeats a create (the blueprints do)."""
        self.session: Session | None = None
        """The session this request shares with the client's other HTTP and socket requests (a dict,
        saved after the request if it changed); ``None`` when sessions are off for it."""

    @property
    def is_socket(self) -> bool:
        """True for a virtual request over a socket, False over plain HTTP."""
        return self.socket is not None

    @property
    def wants_json(self) -> bool:
        """Whether the client prefers JSON; always true for socket requests, as in Sails."""
        return self.is_socket or "json" in self.headers.get("accept", "") or "json" in self.headers.get(
            "content-type", ""
        )

    def all_params(self) -> dict[str, Any]:
        """Query, body and route parameters merged (route parameters win, then the body), as in Sails."""
        merged = dict(self.query)
        if isinstance(self.body, dict):
            merged.update(self.body)
        merged.update(self.params)
        return merged

    def param(self, name: str, default: Any = None) -> Any:
        """One parameter, looked up in route parameters, then the body, then the query."""
        if name in self.params:
            return self.params[name]
        if isinstance(self.body, dict) and name in self.body:
            return self.body[name]
        return self.query.get(name, default)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url}{' (socket)' if self.is_socket else ''}>"


class Response:
    """What an action answers (``res``): call one of the sending methods once.

    The setters return the response, so they chain: ``res.status(201).set("X-Id", "7").json(record)``.
    """

    def __init__(self, *, production: bool = False, request: Request | None = None) -> None:
        self.status_code = 200
        self.headers: dict[str, str] = {}
        self.body: Any = _UNSET
        self.sent = False
        self.as_json = False
        """Whether the body must go out as JSON even when it is a string (``res.json("text")``)."""
        self._production = production
        self._request = request

    # setters -----------------------------------------------------------------------------------------
    def status(self, code: int) -> Response:
        """Set the status code for the body sent next."""
        self.status_code = int(code)
        return self

    def set(self, name: str | dict[str, str], value: str | None = None) -> Response:
        """Set a response header, or several from a dict."""
        items = name.items() if isinstance(name, dict) else [(name, value)]
        for key, val in items:
            for existing in [k for k in self.headers if k.lower() == str(key).lower()]:
                del self.headers[existing]  # header names are case-insensitive: one entry each
            self.headers[str(key)] = str(val)
        return self

    def header(self, name: str) -> str | None:
        """The value of response header ``name``, whatever its case."""
        for key, val in self.headers.items():
            if key.lower() == name.lower():
                return val
        return None

    # senders -----------------------------------------------------------------------------------------
    def send(self, body: Any = _UNSET) -> None:
        """Send ``body`` as it is (a str, JSON-able data or bytes) with the current status."""
        if self.sent:
            raise RuntimeError("this response was already sent; an action answers once")
        self.sent = True
        self.body = "" if body is _UNSET else body

    def json(self, data: Any = None) -> None:
        """Send ``data`` as JSON (over HTTP a string goes out as a JSON string, ``"text"`` with quotes)."""
        self.as_json = True
        self.send(data)

    def ok(self, data: Any = _UNSET) -> None:
        """200, with ``data`` or ``"OK"``."""
        self.status(200).send("OK" if data is _UNSET else data)

    def created(self, data: Any = _UNSET) -> None:
        """201, with ``data`` or ``"Created"``."""
        self.status(201).send("Created" if data is _UNSET else data)

    def bad_request(self, data: Any = _UNSET) -> None:
        """400, with ``data`` (say what is wrong) or ``"Bad Request"``."""
        self.status(400).send(self._describe(data, "Bad Request"))

    def forbidden(self, data: Any = _UNSET) -> None:
        """403 ``"Forbidden"``. Any argument is ignored, as in Sails: a refusal tells no secrets."""
        self.status(403).send("Forbidden")

    def not_found(self, data: Any = _UNSET) -> None:
        """404, with ``data`` or ``"Not Found"``."""
        self.status(404).send(self._describe(data, "Not Found"))

    def server_error(self, error: Any = _UNSET) -> None:
        """500. In development the body is the error (a traceback for an exception); in production
        it is always ``"Internal Server Error"``, so no stack ever reaches a client."""
        if self._production or error is _UNSET:
            body: Any = "Internal Server Error"
        elif isinstance(error, BaseException):
            body = "".join(traceback.format_exception(error))
        else:
            body = error
        self.status(500).send(body)

    def view(self, name: str | None = None, /, *, layout: str | bool | None = None, **locals: Any) -> None:
        """Render ``views/<name>.html`` (Jinja2) with ``locals`` and send it as HTML, as Sails' ``res.view``.

        The view also sees ``req``, ``session``, ``sails`` and, with CSRF protection on, ``_csrf``. It is
        put in the layout (``views/layouts/layout.html`` unless ``views.layout`` says otherwise) as
        ``body``; ``layout="layouts/other"`` picks another, ``layout=False`` none. With no ``name``, the
        view named after the action (``say/hello`` renders ``views/say/hello.html``). A missing
        template raises :class:`~trisails.ViewNotFound`, a 500 that names the file looked for."""
        from .views import render_view

        if self._request is None:
            raise RuntimeError("res.view needs the request this response answers; it works in actions and policies")
        render_view(self._request, self, name, layout, locals)

    def redirect(self, url: str, status: int = 302) -> None:
        """Redirect to ``url`` (302 unless told otherwise)."""
        self.set("location", url)
        if self.header("content-type") is None:
            self.set("content-type", "text/html")
        self.status(status).send(f"Redirecting to {url}")

    def _describe(self, data: Any, default: str) -> Any:
        if data is _UNSET or data is None:
            return default
        if isinstance(data, BaseException):
            return default if self._production else repr(data)
        return data

    def __repr__(self) -> str:
        return f"<Response {self.status_code}{' sent' if self.sent else ''}>"
