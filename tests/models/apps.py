"""The models most stories use, and the helpers they share.

``User`` has many ``Pet``\\ s (``User.pets`` and ``Pet.owner`` are the two sides of one association), as
in the spec's captures. ``Inbox`` records what a client hears of the models' events, and
:func:`assert_wire` compares messages key order included, since Sails' JSON has a fixed key order.
"""

from __future__ import annotations

import json
import ssl
import time
from functools import partial
from typing import Any

import httpx
import trio

from trisails import App, Model, Optional, Required, Set, Settings
from trisails.client import Client

#: Seconds a whole story may take; every test runs inside ``trio.fail_after(WAIT)``.
WAIT = 10.0
#: Seconds a client is given to (not) hear something after everything it should hear has arrived.
QUIET = 0.05


class User(Model):
    name = Required(str, unique=True)
    age = Optional(int)
    pets = Set("Pet")


class Pet(Model):
    name = Required(str)
    owner = Optional(User)


def pets_app(settings: Settings | None = None) -> App:
    """An app with the ``user`` and ``pet`` models and their blueprints."""
    app = App(settings)
    app.model(User)
    app.model(Pet)
    return app


#: One TLS context for every HTTP client: httpx builds one per client otherwise, loading the CA bundle
#: each time (0.1 s), though these clients only speak plain HTTP to 127.0.0.1.
_TLS = ssl.create_default_context()


def http_client(url: str) -> httpx.AsyncClient:
    """An HTTP client for a lifted app at ``url``."""
    return httpx.AsyncClient(base_url=url, verify=_TLS)


def in_production(settings: Settings) -> Settings:
    """``settings`` switched to production mode, with what production insists on, and tables made at lift
    (production's default, ``safe``, wants them made beforehand)."""
    settings.environment = "production"
    settings.session.secret = "a long random string shared by every process of the app"
    settings.sockets.only_allow_origins = ("*",)
    settings.datastores.migrate = "alter"
    return settings


class Inbox:
    """Every message one client hears under some events, as ``(event, message)`` in arrival order."""

    def __init__(self, client: Client, *events: str) -> None:
        self.heard: list[tuple[str, Any]] = []
        self._arrived = trio.lowlevel.ParkingLot()
        for event in events:
            client.on(event, partial(self._hear, event))

    def _hear(self, event: str, message: Any) -> None:
        self.heard.append((event, message))
        self._arrived.unpark_all()

    async def until(self, count: int) -> list[tuple[str, Any]]:
        """Wait until ``count`` messages have arrived (the story bounds the wait), and return them all."""
        while len(self.heard) < count:
            await self._arrived.park()
        return self.heard

    async def nothing_more_than(self, count: int) -> list[tuple[str, Any]]:
        """Give stragglers :data:`QUIET` seconds, then check no more than ``count`` messages came."""
        await trio.sleep(QUIET)
        assert len(self.heard) == count, f"expected {count} messages, heard {self.heard}"
        return self.heard


def rooms(app: App, client: Client) -> set[str]:
    """The rooms ``client``'s socket is in on the server, its own id room included."""
    assert client.id is not None, "the client is not connected"
    return app.sockets.rooms_of(client.id)


def assert_wire(got: Any, expected: Any) -> None:
    """Equal values, with the keys of every object in the same order (as they went on the wire)."""
    assert got == expected
    assert json.dumps(got) == json.dumps(expected), "the same values, in another key order"


def assert_timestamp(value: Any) -> None:
    """An epoch-milliseconds integer from the last minute, as Sails' ``createdAt``/``updatedAt``."""
    assert isinstance(value, int) and not isinstance(value, bool), value
    assert abs(value - time.time() * 1000) < 60_000, value


class Caller:
    """Blueprint requests over a socket or over HTTP, answered alike as ``(status, body)``.

    Over HTTP, a GET's data goes in the query string (values that are not text as JSON), as a browser
    would send it; any other verb sends it as a JSON body.
    """

    def __init__(self, via: Client | httpx.AsyncClient) -> None:
        self.via = via

    async def __call__(self, verb: str, url: str, data: Any = None) -> tuple[int, Any]:
        if isinstance(self.via, Client):
            body, jwr = await self.via.request(verb, url, data)
            return jwr.status_code, body
        if verb.upper() == "GET":
            query = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (data or {}).items()}
            response = await self.via.request(verb, url, params=query)
        else:
            response = await self.via.request(verb, url, json=data)
        is_json = response.headers.get("content-type", "").startswith("application/json")
        return response.status_code, response.json() if is_json else response.text
