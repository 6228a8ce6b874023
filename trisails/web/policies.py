"""Policies: checks that run before an action, the same for HTTP and socket requests.

A policy is a function ``policy(req, res)`` (``async def`` or plain ``def``). It lets the request through
by returning without answering, and ends it by answering: ``res.forbidden()``. The policy map, Sails'
``config/policies.js`` in Python, says which policies guard which actions::

    policies = {
        "*": "is_logged_in",                       # every action, unless a closer entry says otherwise
        "say/hello": True,                         # open to all
        "user": {"*": "is_logged_in", "destroy": ["is_logged_in", "is_admin"]},
        "admin/*": ["is_logged_in", "is_admin"],
        "debug/*": False,                          # closed to all: 403
    }

Keys are action names (``user/find``), ``prefix/*`` patterns, or a controller (or model) name holding a
dict of its actions. Blueprint actions are named ``<model>/find``, ``<model>/find_one`` (``findone`` also
works), ``create``, ``update``, ``destroy``, ``add``, ``remove``, ``replace`` and ``populate``. The most
specific entry wins: the exact action, then the longest ``prefix/*``, then ``*``. Without a ``*`` entry,
actions no entry names are open, as in Sails.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import trio

from .._errors import ConfigError

if TYPE_CHECKING:
    from .request import Request, Response

__all__ = ["Policies", "Policy"]

Policy = Callable[..., Any]
#: What a policy map entry may be: open (True), closed (False), a policy name or function, or a list of them.
Entry = bool | str | Policy | list[str | Policy]


def _deny(req: Request, res: Response) -> None:
    """The policy of a ``False`` entry: nobody gets through."""
    res.forbidden()


class Policies:
    """The known policies by name, and the map from actions to the chains that guard them."""

    def __init__(self) -> None:
        self.known: dict[str, Policy] = {}
        """Every policy by name (``api/policies/*.py`` functions, or :meth:`add`)."""
        self._map: dict[str, list[Policy]] = {}
        self._raw: dict[str, Entry] = {}

    def add(self, name: str, policy: Policy) -> None:
        """Make ``policy`` known as ``name``, for the map to refer to."""
        if not callable(policy):
            raise ConfigError(f"policy {name!r} must be a function policy(req, res), got {policy!r}")
        self.known[name] = policy
        if self._raw:
            self.configure(self._raw)  # names in the map may refer to it now

    def configure(self, mapping: Mapping[str, Any]) -> None:
        """Replace the policy map; :class:`ConfigError` for an entry that names no known policy."""
        flat: dict[str, Entry] = {}
        for key, value in mapping.items():
            if not isinstance(key, str):
                raise ConfigError(f"policies: keys are action names or patterns, got {key!r}")
            key = _normal(key)
            if isinstance(value, Mapping):
                for action, entry in value.items():
                    flat[_normal(f"{key}/{action}")] = entry
            else:
                flat[key] = value
        compiled = {key: self._chain(key, value) for key, value in flat.items()}
        self._raw = dict(mapping)
        self._map = compiled

    def _chain(self, key: str, entry: Any) -> list[Policy]:
        if entry is True:
            return []
        if entry is False:
            return [_deny]
        items: Iterable[Any] = entry if isinstance(entry, list) else [entry]
        chain = []
        for item in items:
            if isinstance(item, str):
                policy = self.known.get(item)
                if policy is None:
                    known = ", ".join(sorted(self.known)) or "none"
                    raise ConfigError(f"policies[{key!r}]: no policy named {item!r} (known policies: {known})")
                chain.append(policy)
            elif callable(item) and not isinstance(item, bool):
                chain.append(item)
            else:
                raise ConfigError(
                    f"policies[{key!r}]: an entry is True, False, a policy name or function, or a list of them; got {item!r}"
                )
        return chain

    def chain(self, action: str) -> list[Policy]:
        """The policies guarding the action ``action``, most specific entry first."""
        action = _normal(action)
        if action in self._map:
            return self._map[action]
        parts = action.split("/")
        for end in range(len(parts) - 1, 0, -1):
            pattern = "/".join(parts[:end]) + "/*"
            if pattern in self._map:
                return self._map[pattern]
        return self._map.get("*", [])

    async def check(self, action: str, req: Request, res: Response) -> bool:
        """Run the chain of ``action`` in order; False as soon as one policy answered the request."""
        if not self._map:
            return True  # no policy map: nothing to look up
        for policy in self.chain(action):
            if inspect.iscoroutinefunction(policy):
                await policy(req, res)
            else:
                await trio.to_thread.run_sync(policy, req, res)
            if res.sent:
                return False
        return True


def _normal(name: str) -> str:
    """``User.FindOne`` / ``user.findone`` → ``user/find_one``: one spelling per action."""
    name = name.strip("/").replace(".", "/").lower()
    head, _, last = name.rpartition("/")
    if last == "findone":
        last = "find_one"
    return f"{head}/{last}" if head else last
