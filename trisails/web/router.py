"""One route table for HTTP and socket requests.

Routes are written as in Sails' ``config/routes.js``: ``"GET /user/:id"`` or ``"/say/hello"`` (any verb,
paths matched without regard to case),
with ``:name`` parameters (``:name?`` when optional) and a ``*`` wildcard (its match is ``req.params["0"]``).
A target is an action: a function, or the name of one in ``api/controllers`` (``"say.hello"`` or
``"say/hello"``), optionally in a dict with more route options (``{"action": "say/hello", "skip": 1}``);
or a view, ``{"view": "homepage"}`` (with ``"locals"``), rendered from ``views/`` with no policy.

Explicit routes are matched first, in the order they were added; then the action routes that every
controller function gets (``/say/hello`` for ``api/controllers/say.py:hello``) unless the app turns them
off; then the blueprint routes of the models (``GET /user/:id``), so an app's own route always wins.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .._concurrency import is_async
from .._errors import ConfigError

__all__ = ["Action", "Route", "Router"]

Action = Callable[..., Any]

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD")
# A wildcard's regex group is named so no route parameter can clash; its match is params["0"], ["1"]...
_WILDCARD_GROUP = "trisails_wildcard_"
_WILDCARD = {f"{_WILDCARD_GROUP}{n}": str(n) for n in range(16)}
_PARAM = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)(\?)?")


@dataclass
class Route:
    """One route: a verb (``"*"`` for any), a path pattern and the action it runs."""

    method: str
    pattern: str
    action: Action
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    regex: re.Pattern[str] = field(init=False, repr=False)
    is_async: bool = field(init=False, repr=False)
    """Whether the action is an ``async def`` (a plain ``def`` runs in a worker thread)."""

    def __post_init__(self) -> None:
        self.regex = _compile(self.pattern)
        self.is_async = is_async(self.action)

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.method != "*" and self.method != method and not (self.method == "GET" and method == "HEAD"):
            return None
        found = self.regex.match(path)
        if found is None:
            return None
        return {_WILDCARD.get(k, k): v for k, v in found.groupdict().items() if v is not None}


def _compile(pattern: str) -> re.Pattern[str]:
    """``/user/:id/*`` → a regex with a named group per parameter; a trailing slash is optional."""
    if not pattern.startswith("/"):
        raise ConfigError(f"route path {pattern!r} must start with '/'")
    out = []
    position = 0
    wildcard = 0
    for match in re.finditer(r":[A-Za-z_][A-Za-z0-9_]*\??|\*", pattern):
        out.append(re.escape(pattern[position : match.start()]))
        token = match.group()
        if token == "*":
            out.append(f"(?P<{_WILDCARD_GROUP}{wildcard}>.*)")
            wildcard += 1
        else:
            name = token[1:].rstrip("?")
            if token.endswith("?"):
                # an optional segment also makes the slash before it optional
                if out and out[-1].endswith("/"):
                    out[-1] = out[-1][:-1]
                out.append(f"(?:/(?P<{name}>[^/]+))?")
            else:
                out.append(f"(?P<{name}>[^/]+)")
        position = match.end()
    out.append(re.escape(pattern[position:]))
    body = "".join(out).rstrip("/") or ""
    return re.compile(f"^{body}/?$", re.IGNORECASE)  # paths match case-insensitively, as in Express


class Router:
    """The route table: explicit routes first, then action routes."""

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.action_routes: list[Route] = []
        self.blueprint_routes: list[Route] = []
        self.actions: dict[str, Action] = {}
        """Every known action by name (``say/hello``)."""

    def add_action(self, name: str, action: Action, *, route: bool = True) -> None:
        """Register the action ``name`` (``say/hello``); with ``route`` it also answers at ``/say/hello``."""
        name = name.strip("/").replace(".", "/")
        self.actions[name] = action
        self.action_routes = [r for r in self.action_routes if r.name != name]  # registering again replaces
        if route:
            self.action_routes.append(Route("*", "/" + name, action, name))

    def add_blueprint(self, method: str, path: str, action: Action, name: str, options: dict[str, Any]) -> Route:
        """Add a model's blueprint route; these are matched after every other route."""
        route = Route(method, path, action, name, options)
        self.blueprint_routes.append(route)
        return route

    def add(self, spec: str, target: Action | str | dict[str, Any]) -> Route:
        """Add an explicit route, ``"GET /user/:id"`` or ``"/path"`` (any verb)."""
        method, _, path = spec.strip().partition(" ")
        if not path:
            method, path = "*", method
        method = method.upper()
        if method not in (*METHODS, "*", "ALL"):
            raise ConfigError(f"route {spec!r}: unknown verb {method!r}")
        options: dict[str, Any] = {}
        if isinstance(target, dict) and "view" in target:
            return self._add_view(spec, method, path, target)
        if isinstance(target, dict):
            options = {k: v for k, v in target.items() if k != "action"}
            if "action" not in target:
                raise ConfigError(f"route {spec!r}: a dict target needs an 'action' key (or a 'view' key)")
            target = target["action"]
        if isinstance(target, str):
            name = target.strip("/").replace(".", "/")
            action = self.actions.get(name)
            if action is None:
                known = ", ".join(sorted(self.actions)) or "none"
                raise ConfigError(f"route {spec!r}: no action named {name!r} (known actions: {known})")
        elif callable(target):
            action, name = target, getattr(target, "__qualname__", repr(target))
        else:
            raise ConfigError(f"route {spec!r}: the target must be an action name or a function, got {target!r}")
        route = Route("*" if method == "ALL" else method, path.strip(), action, name, options)
        self.routes.append(route)
        return route

    def _add_view(self, spec: str, method: str, path: str, target: dict[str, Any]) -> Route:
        """A route straight to a view, ``{"view": "homepage", "locals": {...}}``, as Sails' routes to views."""
        from .views import view_action

        view = target["view"]
        if not isinstance(view, str) or not view.strip("/"):
            raise ConfigError(f"route {spec!r}: 'view' names a template of views/, like 'homepage' or 'pages/about'; got {view!r}")
        unknown = set(target) - {"view", "locals"}
        if "action" in unknown:
            raise ConfigError(f"route {spec!r}: a route targets an action or a view, not both")
        if unknown:
            raise ConfigError(f"route {spec!r}: a view target takes 'view' and 'locals', not {', '.join(sorted(unknown))}")
        values = target.get("locals", {})
        if not isinstance(values, dict):
            raise ConfigError(f"route {spec!r}: 'locals' must be a dict of the names the view sees, got {values!r}")
        name = view.strip("/")
        route = Route("*" if method == "ALL" else method, path.strip(), view_action(name, values), f"view:{name}", {"view": name})
        self.routes.append(route)
        return route

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The first route for ``method`` and ``path``, with its parameters."""
        for route in self._all():
            params = route.match(method, path)
            if params is not None:
                return route, params
        return None

    def allowed_methods(self, path: str) -> list[str]:
        """Verbs some route answers at ``path`` (for OPTIONS)."""
        methods: set[str] = set()
        for route in self._all():
            if route.regex.match(path):
                methods.update(METHODS if route.method == "*" else (route.method,))
                if route.method == "GET":
                    methods.add("HEAD")  # a GET route answers HEAD too
        return sorted(methods)

    def _all(self) -> Iterable[Route]:
        yield from self.routes
        yield from self.action_routes
        yield from self.blueprint_routes
