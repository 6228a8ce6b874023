"""sails.io.js 1.2.1 in Node watching the quickstart's models change: resourceful pub-sub on the wire.

Two pages, as in the spec's LIVE capture (``sails-realtime-spec.md`` Appendix A.2): page A listens for
``user`` and ``pet`` and reads the users over its socket, which subscribes it; page B (or plain HTTP)
changes things. What A's ``io.socket.on('user', ...)`` handler receives is compared whole, keys in wire
order, with the message shapes of spec §4.3, filled in with the ids and timestamps from the responses the
acting side got. The requester never hears about its own change (§4.4); HTTP-made changes reach every
subscriber.

The models are ``examples/quickstart/api/models``: ``User`` (name, age, ``pets = Set("Pet")``) and
``Pet`` (name, ``owner = Optional("User")``); each test's records live in its own SQLite file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compat.apps import connect_on, lifted
from tests.support.jsclient import JsDriver, JsSocket, Jwr
from trisails import App

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"

#: What a socket hears about the models: the event of each model is its identity.
MODEL_EVENTS = ["user", "pet"]


@pytest.fixture
def quickstart(tmp_path: Path) -> App:
    """The quickstart app, keeping its records in ``tmp_path`` (never in the examples folder)."""
    app = App.load(QUICKSTART)
    app.settings.datastores.url = f"sqlite:///{tmp_path}/db.sqlite"
    return app


def failure(status: int, body: Any) -> str:
    """``jwr.error.message`` as sails.io.js builds it for a status outside 200..399."""
    return f"Server responded with a {status} status code:\n```\n{json.dumps(body, indent=2)}\n```"


def ok(body: Any, jwr: Jwr) -> Any:
    """The body of a 200 JWR (failing with what came instead)."""
    assert (jwr.status_code, jwr.error) == (200, None), (jwr.status_code, body)
    return body


def key_order(value: Any) -> Any:
    """The keys of every object in ``value``, in order: messages are compared key order included."""
    if isinstance(value, dict):
        return [(key, key_order(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [key_order(item) for item in value]
    return None


async def heard(socket: JsSocket, event: str, expected: dict[str, Any]) -> None:
    """``socket`` receives ``event`` with exactly one argument, equal to ``expected``, keys in its order."""
    args = await socket.next_event(event)
    assert args == [expected]
    assert key_order(args[0]) == key_order(expected), "keys in wire order"


async def hears_nothing_more(*sockets: JsSocket, within: float = 0.3) -> None:
    for socket in sockets:
        for event in MODEL_EVENTS:
            await socket.expect_no_event(event, within=within)
            within = 0  # the others had that long too


# ------------------------------------------------------------------------------------- 1. the spec's story
async def test_a_page_hears_every_change_another_page_makes_but_never_its_own(
    js: JsDriver, quickstart: App, transport: str
) -> None:
    async with lifted(quickstart, js) as url:
        a = await connect_on(js, "sails", url, transport, name="A", listen=MODEL_EVENTS)
        b = await connect_on(js, "sails", url, transport, name="B", listen=MODEL_EVENTS)
        # both pages read the users (none yet): each watches the User class room, as a page doing
        # io.socket.get('/user') does, so B would hear everything A hears if it were not the actor
        for page in (a, b):
            assert ok(*await page.get("/user")) == []

        # B creates a user: A hears "created" with the record B got back
        joe = ok(*await b.post("/user", {"name": "joe"}))
        uid = joe["id"]
        assert joe == {"pets": [], "id": uid, "createdAt": joe["createdAt"], "updatedAt": joe["createdAt"], "name": "joe", "age": None}
        await heard(a, "user", {"verb": "created", "data": joe, "id": uid})

        # A opens the user's page (findOne): subscribed to it, and watching Pet through its association
        # (in Sails the find above watched only User: it watches associated models once per record found)
        assert ok(*await a.get(f"/user/{uid}")) == joe

        # B renames it: A hears the values set (with the id and the new updatedAt) and the record before
        joey = ok(*await b.patch(f"/user/{uid}", {"name": "joey"}))
        assert joey == {**joe, "name": "joey", "updatedAt": joey["updatedAt"]}
        await heard(
            a,
            "user",
            {"verb": "updated", "data": {"name": "joey", "id": uid, "updatedAt": joey["updatedAt"]}, "id": uid, "previous": joe},
        )

        # B creates a pet: A watches Pet, so it hears "created" on the pet event
        rex = ok(*await b.post("/pet", {"name": "rex"}))
        pid = rex["id"]
        assert rex == {"id": pid, "createdAt": rex["createdAt"], "updatedAt": rex["createdAt"], "name": "rex", "owner": None}
        await heard(a, "pet", {"verb": "created", "data": rex, "id": pid})

        # B gives the pet to the user: "addedTo" on the user, and the pet's side "updated" with its owner
        owned = ok(*await b.put(f"/user/{uid}/pets/{pid}"))
        assert owned["pets"] == [{**rex, "owner": uid, "updatedAt": owned["pets"][0]["updatedAt"]}]
        await heard(a, "user", {"id": uid, "verb": "addedTo", "attribute": "pets", "addedId": pid})
        await heard(a, "pet", {"verb": "updated", "data": {"owner": uid}, "id": pid})

        # B takes it back: "removedFrom", and the pet has no owner any more
        unowned = ok(*await b.delete(f"/user/{uid}/pets/{pid}"))
        assert unowned["pets"] == []
        await heard(a, "user", {"id": uid, "verb": "removedFrom", "attribute": "pets", "removedId": pid})
        await heard(a, "pet", {"verb": "updated", "data": {"owner": None}, "id": pid})

        # B deletes the user: A hears "destroyed" with the record as it was
        gone = ok(*await b.delete(f"/user/{uid}"))
        assert gone == unowned
        await heard(a, "user", {"verb": "destroyed", "id": uid, "previous": unowned})

        # exactly once each, and the actor heard none of it
        await hears_nothing_more(a, b)
        assert b.buffered("user") == [] and b.buffered("pet") == []


# ------------------------------------------------------------------------------------- 2. changes over HTTP
async def test_changes_made_over_http_reach_every_subscribed_page(js: JsDriver, quickstart: App) -> None:
    async with lifted(quickstart, js) as url, httpx.AsyncClient(base_url=url, timeout=5.0) as http:
        pages = [await js.connect("sails", url, name=name, listen=MODEL_EVENTS) for name in ("A", "B")]
        for page in pages:
            assert ok(*await page.get("/user")) == []

        created = await http.post("/user", json={"name": "ann", "age": 30})
        assert created.status_code == 200
        ann = created.json()
        uid = ann["id"]
        for page in pages:
            await heard(page, "user", {"verb": "created", "data": ann, "id": uid})

        patched = await http.patch(f"/user/{uid}", json={"age": 31})
        assert patched.status_code == 200
        after = patched.json()
        assert after == {**ann, "age": 31, "updatedAt": after["updatedAt"]}
        for page in pages:
            await heard(
                page,
                "user",
                {"verb": "updated", "data": {"age": 31, "id": uid, "updatedAt": after["updatedAt"]}, "id": uid, "previous": ann},
            )

        deleted = await http.delete(f"/user/{uid}")
        assert (deleted.status_code, deleted.json()) == (200, after)
        for page in pages:
            await heard(page, "user", {"verb": "destroyed", "id": uid, "previous": after})

        await hears_nothing_more(*pages)


async def test_a_page_that_read_a_user_hears_it_change_over_http_and_only_that_user(
    js: JsDriver, quickstart: App
) -> None:
    async with lifted(quickstart, js) as url, httpx.AsyncClient(base_url=url, timeout=5.0) as http:
        first = (await http.post("/user", json={"name": "ann"})).json()
        second = (await http.post("/user", json={"name": "bob"})).json()
        page = await js.connect("sails", url, listen=MODEL_EVENTS)
        # findOne subscribes to that record only; it does not watch the User class room
        assert ok(*await page.get(f"/user/{first['id']}")) == first

        assert (await http.patch(f"/user/{second['id']}", json={"name": "bobby"})).status_code == 200
        assert (await http.post("/user", json={"name": "cy"})).status_code == 200
        renamed = (await http.patch(f"/user/{first['id']}", json={"name": "annie"})).json()
        await heard(
            page,
            "user",
            {
                "verb": "updated",
                "data": {"name": "annie", "id": first["id"], "updatedAt": renamed["updatedAt"]},
                "id": first["id"],
                "previous": first,
            },
        )
        await hears_nothing_more(page)


# ------------------------------------------------------------------------------------- 3. refusals
async def test_a_bad_where_is_a_400_naming_the_criteria(js: JsDriver, quickstart: App) -> None:
    async with lifted(quickstart, js) as url:
        page = await js.connect("sails", url, listen=MODEL_EVENTS)
        bad_wheres = [
            {"where": "{not json"},  # Sails answers 500 here (spec §5.5, a quirk not copied)
            {"where": json.dumps({"age": {"frobnicate": 3}})},  # an unknown modifier
            {"where": {"age": {"frobnicate": 3}}},  # the same, as an object in the socket data
        ]
        for data in bad_wheres:
            body, jwr = await page.get("/user", data)
            assert (jwr.status_code, jwr.headers) == (400, {}), data
            assert list(body) == ["code", "details", "message"], body
            assert body["code"] == "E_INVALID_CRITERIA"
            assert isinstance(body["details"], str) and body["details"], body
            assert body["message"].startswith(
                "The server could not fulfill this request (`GET /user`) due to a problem with the parameters "
                "that were sent.  See the `details` for more info."
            ), body
            assert jwr.error == failure(400, body)

        # and the refused read subscribed the page to nothing
        async with httpx.AsyncClient(base_url=url, timeout=5.0) as http:
            assert (await http.post("/user", json={"name": "ann"})).status_code == 200
        await page.expect_no_event("user")


async def test_a_missing_record_is_a_404_and_nobody_hears_anything(js: JsDriver, quickstart: App) -> None:
    async with lifted(quickstart, js) as url:
        watcher = await js.connect("sails", url, name="watcher", listen=MODEL_EVENTS)
        actor = await js.connect("sails", url, name="actor", listen=MODEL_EVENTS)
        rex = ok(*await actor.post("/pet", {"name": "rex"}))
        assert ok(*await watcher.get("/user")) == []

        missing = [
            ("get", "/user/999", None),
            ("patch", "/user/999", {"name": "nobody"}),
            ("delete", "/user/999", None),
            ("put", f"/user/999/pets/{rex['id']}", None),
            ("delete", f"/user/999/pets/{rex['id']}", None),
        ]
        for method, path, data in missing:
            body, jwr = await actor.request(method, path, data)
            assert (body, jwr.status_code, jwr.headers) == ("Not Found", 404, {}), (method, path)
            assert jwr.error == failure(404, "Not Found")

        await hears_nothing_more(watcher, actor)
