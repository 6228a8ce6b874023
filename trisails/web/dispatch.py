"""Running a request: router → CSRF check → policies → action → response, the same for HTTP and for socket requests.

``dispatch`` is where every request meets the app. It never raises: an unknown route becomes
``res.not_found()``, an action that raises becomes ``res.server_error(err)`` (a traceback in development,
``"Internal Server Error"`` in production), and an action that returns without answering is a 500 that
says so. A plain ``def`` action runs in a worker thread so it cannot block the event loop.
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Any

import trio

from .._concurrency import is_awaitable
from .._errors import TrisailsError
from .request import Request, Response
from .security import csrf_ok

if TYPE_CHECKING:
    from .policies import Policies
    from .router import Router

__all__ = ["dispatch"]

log = logging.getLogger("trisails.web")


async def dispatch(router: Router, req: Request, *, production: bool, policies: Policies | None = None) -> Response:
    """Route ``req``, run the policies guarding its action and then the action, and return the response.

    A policy that answers (``res.forbidden()``) ends the request there: the action never runs."""
    res = Response(production=production, request=req)
    found = router.match(req.method, req.path)
    if found is None:
        if req.method == "OPTIONS" and (allowed := router.allowed_methods(req.path)):
            res.set("allow", ", ".join(allowed))
            res.sent = True  # an OPTIONS answer has headers and no body, as in Sails
            return res
        res.not_found()
        return res
    route, params = found
    req.params = params
    req.options = route.options
    req.action = route.name
    if req.app.settings.security.csrf and not csrf_ok(req):
        log.info("refused %s %s: no valid CSRF token", req.method, req.path)
        res.forbidden()
        return res
    try:
        guarded = not route.options.get("builtin") and "view" not in route.options  # as in Sails: views have no policies
        if policies is not None and guarded and not await policies.check(route.name, req, res):
            return res
        if route.is_async:
            result = await route.action(req, res)
        else:
            result = await trio.to_thread.run_sync(route.action, req, res)
    except Exception as error:
        if isinstance(error, TrisailsError) and error.http_status is not None:
            # an error trisails names, which says what the client should do: its status, not a 500
            log.info("%s %s: %s", req.method, req.url, error)
            res = Response(production=production)
            res.status(error.http_status).send(error.response_body(req.method, req.path, production=production))
            return res
        log.exception("action %s (or a policy guarding it) failed on %s %s", route.name, req.method, req.url)
        if not res.sent:
            res = Response(production=production)
            res.server_error(error)
        return res
    if not res.sent:
        _answer_with(res, result, route.name)
    if is_awaitable(res.body):
        return unsendable(req, res.body, production=production)
    return res


def unsendable(req: Request, body: Any, *, production: bool, error: Exception | None = None) -> Response:
    """The answer to a request whose action chose a body JSON cannot carry (a set, an object, a coroutine
    from a forgotten ``await``): a 500 with a JSON body, logged with the action's name, the same over
    HTTP and sockets. Both transports call this when their encoder refuses the body."""
    action = req.action or f"{req.method} {req.path}"
    if inspect.isawaitable(body):
        if inspect.iscoroutine(body):
            body.close()  # it will never run: no "never awaited" warning on top of this message
        problem = f"the action {action} answered with {type(body).__name__} {_name_of(body)}: an await is missing"
    else:
        problem = f"the response body of the action {action} cannot be sent as JSON: {error or type(body).__name__}"
    log.error("%s %s: %s", req.method, req.url, problem)
    res = Response(production=production)
    res.status(500).json("Internal Server Error" if production else problem[0].upper() + problem[1:])
    return res


def _name_of(awaitable: Any) -> str:
    name = getattr(awaitable, "__qualname__", None)
    return f"{name}()" if name else repr(awaitable)


def _answer_with(res: Response, result: Any, action: str) -> None:
    """An action that returns a value instead of answering sends that value (a Pythonic shortcut)."""
    if result is not None:
        res.ok(result)
        return
    log.error("action %s returned without sending a response", action)
    res.server_error(RuntimeError(f"the action {action} returned without sending a response (call res.ok(), ...)"))
