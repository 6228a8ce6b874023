"""Sessions shared by HTTP requests and sockets: one signed cookie, one server-side store.

A browser gets the cookie (``sails.sid`` by default) from an HTTP response, and its socket sends it in
the handshake, so ``req.session`` is the same dict in an HTTP action and in a socket action. A socket
that connects without the cookie (a Node or Python client, say) gets a session of its own: the server
makes a cookie for it and keeps it in the socket's handshake, server-side only, so all its requests
share that session. The session is saved after each request that changed it.

The cookie holds only the session id, signed as express-session signs it
(``s:<id>.<HMAC-SHA256 in base64>``), so a forged or altered cookie is simply not a session: the request
goes on with a new, empty one. The data lives in the store: in memory by default (one process);
:class:`SessionStore` is the interface another store implements.

Nothing is stored for a session nothing was put in (a visitor, a crawler, a flood of cookieless
requests cost no memory and no Redis key), and a session emptied by its app is deleted from the store.
``req.session.regenerate()`` gives the client a new session id (call it when a user logs in, out, or
changes role); a session that went through it is marked, so the memory store never evicts it to make
room for sessions that did not.

A client opts out with the handshake header ``nosession`` (no session for the socket at all) or the
query parameter ``nosession=true`` (no session made at connect time; one is made by the first request
that stores something), as in Sails.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, unquote

import orjson

from .._errors import TrisailsError


if TYPE_CHECKING:
    from .._config import SessionSettings
    from .request import Request

__all__ = ["MemoryStore", "Session", "SessionStore", "SessionStoreUnavailable", "Sessions"]

log = logging.getLogger("trisails.web")

#: How many session cookie values :meth:`Sessions.sid_in` remembers the checked session id of.
SID_CACHE_SIZE = 4096
#: A session cookie value longer than this is checked but not remembered: ours are about 80 characters.
SID_CACHE_MAX_VALUE = 200

#: The shortest session secret production accepts: 32 characters, so it cannot be guessed or searched
#: for (a token from ``secrets.token_urlsafe(32)`` has 43).
MIN_SECRET_LENGTH = 32


class SessionStoreUnavailable(TrisailsError):
    """The session store cannot be reached (Redis is down): the request goes on with a fresh session
    that is not saved, and the failure is logged."""


#: The key under which the stored data of a regenerated session says so (removed again when it is loaded).
REGENERATED_KEY = "__trisails_regenerated"
_REGENERATED_MARK = b"regenerated: not saved yet"


class Session(dict[str, Any]):
    """``req.session``: a dict of JSON-able values, saved after the request if it changed."""

    def __init__(
        self,
        sid: str,
        data: Mapping[str, Any] | None = None,
        *,
        new: bool,
        from_cookie: bool = False,
        regenerated: bool = False,
    ) -> None:
        super().__init__(data or {})
        self.id = sid
        """The session id (what the cookie carries, signed)."""
        self.new = new
        """True until the session has been saved once."""
        self.from_cookie = from_cookie
        """Whether the client sent this session's cookie (if not, the response must give it one)."""
        self.regenerated = regenerated
        """Whether this session was made by :meth:`regenerate` (at a login, say): the memory store
        evicts such sessions only after every other one."""
        self._saved = _fingerprint(self)
        self._retired: list[str] = []
        self.unavailable = False
        """True when the store could not be reached: this is a stand-in, and it is not saved."""

    @property
    def changed(self) -> bool:
        return _fingerprint(self) != self._saved

    def regenerate(self, *, keep: bool = False) -> None:
        """Give the client a new session id and forget the old one, as express-session's
        ``req.session.regenerate()`` does: call it when a user logs in, logs out or changes role.

        Whoever knew the old id (a cookie planted in the victim's browser before the login, one read
        from a log) then holds nothing. The session is emptied, as in express-session, unless ``keep``
        (a visitor's cart that should survive the login). The old session is deleted from the store and
        the new cookie goes out with the response when the request ends. Over a socket the new id is
        the socket's from then on, but a browser only gets a new cookie from an HTTP answer: regenerate
        in an HTTP request (a login form, a ``fetch``).
        """
        if not self.new or self.from_cookie:
            self._retired.append(self.id)
        self.id = new_sid()
        if not keep:
            self.clear()
        self.new = True
        self.from_cookie = False
        self.regenerated = True
        self._saved = _REGENERATED_MARK

    def _stored(self) -> dict[str, Any]:
        """What the store keeps: the data, and whether the session was regenerated."""
        return {**self, REGENERATED_KEY: True} if self.regenerated else dict(self)

    def _mark_saved(self) -> None:
        self._saved = _fingerprint(self)
        self.new = False


def _fingerprint(data: Mapping[str, Any]) -> bytes:
    if not data:
        return b"{}"  # most sessions hold nothing: no need to serialize
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS, default=str)


class SessionStore(Protocol):
    """Where session data lives between requests, by session id."""

    async def load(self, sid: str) -> dict[str, Any] | None:
        """The data saved for ``sid``, or ``None`` if there is none (or it expired)."""

    async def save(self, sid: str, data: dict[str, Any], ttl: float) -> None:
        """Keep ``data`` for ``sid`` for ``ttl`` seconds from now."""

    async def destroy(self, sid: str) -> None:
        """Forget ``sid``."""


class MemoryStore:
    """Sessions in this process's memory: the default, for one process. Idle sessions expire after
    ``session.max_age``. Past ``limit`` sessions, the least recently used go first, but a session that
    was regenerated (a login) goes only when no other is left: a flood of anonymous sessions never logs
    a user out."""

    def __init__(self, limit: int = 100_000) -> None:
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._regenerated: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.limit = limit

    async def load(self, sid: str) -> dict[str, Any] | None:
        tier = self._regenerated if sid in self._regenerated else self._data
        entry = tier.get(sid)
        if entry is None:
            return None
        expires, data = entry
        if expires < time.monotonic():
            del tier[sid]
            return None
        tier.move_to_end(sid)
        loaded: dict[str, Any] = orjson.loads(data)
        return loaded

    async def save(self, sid: str, data: dict[str, Any], ttl: float) -> None:
        tier, other = (self._regenerated, self._data) if data.get(REGENERATED_KEY) is True else (self._data, self._regenerated)
        other.pop(sid, None)
        tier[sid] = (time.monotonic() + ttl, orjson.dumps(data, default=str))
        tier.move_to_end(sid)
        while len(self) > self.limit:
            (self._data or self._regenerated).popitem(last=False)

    async def destroy(self, sid: str) -> None:
        self._data.pop(sid, None)
        self._regenerated.pop(sid, None)

    def __len__(self) -> int:
        return len(self._data) + len(self._regenerated)


class Sessions:
    """The session machinery of one app: cookies in, ``req.session`` set, changes saved."""

    def __init__(self, settings: SessionSettings, *, store: SessionStore | None = None) -> None:
        self.settings = settings
        secret = settings.secret or os.environ.get("TRISAILS_SESSION_SECRET", "")
        self.has_secret = bool(secret)
        """Whether the secret was configured (production refuses to lift without one)."""
        self.secret_too_short = 0 < len(secret) < MIN_SECRET_LENGTH
        """Whether the configured secret is shorter than :data:`MIN_SECRET_LENGTH` (production refuses it)."""
        if not secret:
            secret = secrets.token_urlsafe(32)
            log.debug("no session secret configured: using a random one, so sessions end when the process does")
        self._key = secret.encode()
        # a key of its own for CSRF tokens, so a token is never also a valid cookie signature
        self._csrf_key = hmac.new(self._key, b"trisails csrf tokens", hashlib.sha256).digest()
        self._known: dict[str, str | None] = {}
        self._failing = False
        self.store: SessionStore = store if store is not None else MemoryStore()

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    # ----------------------------------------------------------------------------------------- cookies
    def sign(self, sid: str) -> str:
        """The cookie value for ``sid``: ``s:<sid>.<signature>``, URL-encoded as express-session does."""
        return quote(f"s:{sid}.{self._signature(sid)}", safe="")

    def unsign(self, value: str) -> str | None:
        """The session id in a cookie value, or ``None`` if it is not one this app signed."""
        value = unquote(value)
        if not value.startswith("s:") or "." not in value:
            return None
        sid, _, signature = value[2:].rpartition(".")
        try:
            expected = self._signature(sid).encode()
            given = signature.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: not text anyone could have signed
            return None
        return sid if sid and hmac.compare_digest(given, expected) else None

    def csrf_token(self, sid: str) -> str:
        """The CSRF token of the session ``sid``: derived from the id with the secret, so it needs nothing
        stored (a cookieless ``GET /csrfToken`` costs the server nothing), cannot be made without the
        secret, and changes when the session id does (``regenerate()``)."""
        digest = hmac.new(self._csrf_key, sid.encode("utf-8"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def _signature(self, sid: str) -> str:
        digest = hmac.new(self._key, sid.encode("utf-8"), hashlib.sha256).digest()
        return base64.b64encode(digest).decode().rstrip("=")

    def sid_in(self, cookie_header: str | None) -> str | None:
        """The signed session id in a ``Cookie`` header, if there is a valid one.

        A socket sends the same cookie with every request, so checked signatures are remembered: checking
        again each time was a tenth of a virtual request's cost. They are remembered by the session
        cookie's value (short), never by the whole header, which a client may fill with kilobytes of
        other cookies: a few thousand values of at most :data:`SID_CACHE_MAX_VALUE` characters.
        """
        if not cookie_header:
            return None
        value = cookie_value(cookie_header, self.settings.name)
        if value is None:
            return None
        try:
            return self._known[value]
        except KeyError:
            pass
        sid = self.unsign(value)
        if len(value) <= SID_CACHE_MAX_VALUE:
            if len(self._known) >= SID_CACHE_SIZE:
                self._known.clear()
            self._known[value] = sid
        return sid

    def set_cookie(self, sid: str) -> str:
        """A ``Set-Cookie`` header value carrying ``sid``."""
        parts = [f"{self.settings.name}={self.sign(sid)}", "Path=/", f"Max-Age={self.settings.max_age // 1000}", "HttpOnly"]
        parts.append(f"SameSite={self.settings.same_site}")
        if self.settings.secure:
            parts.append("Secure")
        return "; ".join(parts)

    def with_cookie(self, cookie_header: str | None, sid: str) -> str:
        """A ``Cookie`` header like ``cookie_header`` whose session cookie is ``sid``."""
        others = []
        if cookie_header:
            for part in cookie_header.split(";"):
                name = part.split("=", 1)[0].strip()
                if name and name != self.settings.name:
                    others.append(part.strip())
        return "; ".join([*others, f"{self.settings.name}={self.sign(sid)}"])

    # ----------------------------------------------------------------------------------------- requests
    async def open(self, cookie_header: str | None) -> Session:
        """The session a request's cookie names, or a new one (no cookie, an unknown or forged one)."""
        sid = self.sid_in(cookie_header)
        if sid is not None:
            try:
                data = await self.store.load(sid)
            except SessionStoreUnavailable as error:
                self._store_failed(f"sessions are not loaded, requests go on without them: {error}")
                session = Session(sid, new=True, from_cookie=True)
                session.unavailable = True
                return session
            self._store_recovered()
            if data is not None:
                regenerated = data.pop(REGENERATED_KEY, False) is True
                return Session(sid, data, new=False, from_cookie=True, regenerated=regenerated)
            # signed by us, but expired or from before a restart: the same id starts afresh
            return Session(sid, new=True, from_cookie=True)
        return Session(new_sid(), new=True)

    async def save(self, session: Session) -> bool:
        """Save ``session`` if it changed (or always, with ``rolling``), and say whether the response
        must carry its cookie: when the client did not send it, or to renew its ``Max-Age``.

        A session that holds nothing is not stored (one that was, and was emptied, is deleted), but a
        new one's cookie still goes out, so that the page's socket shares the session the page's later
        requests fill (as Sails does). The ids a :meth:`Session.regenerate` retired are deleted.
        """
        if session.unavailable:
            return False  # a stand-in is never saved: it would overwrite the real session
        rolling = self.settings.rolling and not (session.new and not session.changed)
        if session.changed or rolling or session._retired:
            try:
                while session._retired:
                    await self.store.destroy(session._retired[-1])
                    session._retired.pop()
                if session:
                    await self.store.save(session.id, session._stored(), self.settings.max_age / 1000)
                elif not session.new:
                    await self.store.destroy(session.id)  # emptied (a logout): nothing left to keep
            except SessionStoreUnavailable as error:
                self._store_failed(f"sessions are not saved: {error}")
                return not session.from_cookie
            self._store_recovered()
            session._mark_saved()
            return not session.from_cookie or rolling
        return not session.from_cookie

    def _store_failed(self, problem: str) -> None:
        """Log a store outage once, not once per request (under load that would flood the log)."""
        if not self._failing:
            log.error("session store unavailable: %s", problem)
        self._failing = True

    def _store_recovered(self) -> None:
        if self._failing:
            log.warning("session store available again")
        self._failing = False

    async def attach(self, req: Request, cookie_header: str | None) -> None:
        """Give ``req`` its session (``req.session``)."""
        req.session = await self.open(cookie_header) if self.enabled else None


def cookie_value(cookie_header: str, name: str) -> str | None:
    """The value of the cookie ``name`` in a ``Cookie`` header (the first, as express reads it), without
    the double quotes a value may be wrapped in; ``None`` if the header has no such cookie."""
    target = name + "="
    start = 0
    while (found := cookie_header.find(target, start)) >= 0:
        before = cookie_header[:found].rstrip(" \t")
        if not before or before.endswith(";"):  # the name itself, not the end of another cookie's name
            end = cookie_header.find(";", found)
            value = cookie_header[found + len(target) : end if end >= 0 else None].strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value
        start = found + 1
    return None


def new_sid() -> str:
    """A fresh session id: 192 random bits."""
    return secrets.token_urlsafe(24)
