"""Blueprint routes: every model gets Sails' REST, shortcut and association routes, shaped as Sails shapes them.

The stories that make requests with ``call`` run over a socket and over HTTP on SQLite, and over a socket on
PostgreSQL (see ``conftest.py``); the others run on both datastores.
"""

from __future__ import annotations

import trio

from tests.models.apps import WAIT, Caller, User, assert_timestamp, assert_wire, http_client, in_production, pets_app
from trisails import Request, Response, Settings
from trisails.client import connect

RECORD_KEYS = ["pets", "id", "createdAt", "updatedAt", "name", "age"]


# ------------------------------------------------------------------------------------------------ REST
async def test_a_created_record_comes_back_as_sails_shapes_it(call: Caller) -> None:
    with trio.fail_after(WAIT):
        status, joe = await call("post", "/user", {"name": "joe", "age": 41})
        assert status == 200
        assert list(joe) == RECORD_KEYS  # collections first, then the key and timestamps, then the rest
        assert joe["pets"] == [] and joe["id"] == 1 and joe["name"] == "joe" and joe["age"] == 41
        assert_timestamp(joe["createdAt"])
        assert joe["createdAt"] == joe["updatedAt"]
        _, ann = await call("post", "/user", {"name": "ann"})
        assert ann["id"] == 2 and ann["age"] is None  # an optional attribute left out is null


async def test_find_lists_records_by_id_and_find_one_fetches_one(call: Caller) -> None:
    with trio.fail_after(WAIT):
        _, joe = await call("post", "/user", {"name": "joe"})
        _, ann = await call("post", "/user", {"name": "ann"})
        assert await call("get", "/user") == (200, [joe, ann])
        status, found = await call("get", "/user/2")
        assert status == 200
        assert_wire(found, ann)
        assert await call("get", "/user/3") == (404, "Not Found")


async def test_patch_and_put_both_update_a_record(call: Caller) -> None:
    with trio.fail_after(WAIT):
        _, joe = await call("post", "/user", {"name": "joe", "age": 1})
        await trio.sleep(0.002)  # so the update happens in a later millisecond
        status, joey = await call("patch", "/user/1", {"name": "joey"})
        assert status == 200
        assert_wire(joey, {**joe, "name": "joey", "updatedAt": joey["updatedAt"]})
        assert joey["updatedAt"] > joe["createdAt"]
        status, older = await call("put", "/user/1", {"age": 2})  # PUT is deprecated in Sails, still works
        assert status == 200 and older["age"] == 2 and older["name"] == "joey"
        assert older["createdAt"] == joe["createdAt"]
        assert (await call("get", "/user/1"))[1] == older
        status, same = await call("put", "/user/1", older)  # a record sent back as it was received
        assert status == 200 and {**same, "updatedAt": 0} == {**older, "updatedAt": 0}
        assert await call("patch", "/user/9", {"age": 3}) == (404, "Not Found")


async def test_destroy_answers_the_record_as_it_was(call: Caller) -> None:
    with trio.fail_after(WAIT):
        _, joe = await call("post", "/user", {"name": "joe"})
        status, gone = await call("delete", "/user/1")
        assert status == 200
        assert_wire(gone, joe)
        assert await call("get", "/user/1") == (404, "Not Found")
        assert await call("delete", "/user/1") == (404, "Not Found")
        assert await call("get", "/user") == (200, [])


async def test_add_remove_and_replace_change_a_collection(call: Caller) -> None:
    with trio.fail_after(WAIT):
        await call("post", "/user", {"name": "joe"})
        _, rex = await call("post", "/pet", {"name": "rex"})
        _, tom = await call("post", "/pet", {"name": "tom"})
        status, joe = await call("put", "/user/1/pets/1")  # add
        assert status == 200
        assert [p["id"] for p in joe["pets"]] == [1]
        assert list(joe["pets"][0]) == ["id", "createdAt", "updatedAt", "name", "owner"]
        assert joe["pets"][0]["owner"] == 1  # a populated record's own associations are ids
        status, joe = await call("put", "/user/1/pets", [1, 2])  # replace, with a JSON array body
        assert status == 200 and [p["name"] for p in joe["pets"]] == ["rex", "tom"]
        status, joe = await call("delete", "/user/1/pets/1")  # remove
        assert status == 200 and [p["id"] for p in joe["pets"]] == [2]
        assert (await call("get", "/pet/1"))[1]["owner"] is None
        status, joe = await call("put", "/user/1/pets", [])
        assert status == 200 and joe["pets"] == []
        assert await call("put", "/user/9/pets/1") == (404, "Not Found")  # no such parent
        assert await call("put", "/user/1/pets/9") == (404, "Not Found")  # no such child
        assert await call("delete", "/user/9/pets/1") == (404, "Not Found")
        assert rex["name"] == "rex" and tom["name"] == "tom"


async def test_populate_answers_a_collection_or_the_one_related_record(call: Caller) -> None:
    with trio.fail_after(WAIT):
        _, joe = await call("post", "/user", {"name": "joe"})
        _, rex = await call("post", "/pet", {"name": "rex", "owner": 1})
        await call("post", "/pet", {"name": "stray"})
        unpopulated_joe = {k: v for k, v in joe.items() if k != "pets"}
        assert_wire(rex["owner"], unpopulated_joe)  # a new record comes back populated
        status, pets = await call("get", "/user/1/pets")
        assert status == 200
        assert_wire(pets, [{**rex, "owner": 1}])  # the records populate gives are not populated themselves
        status, owner = await call("get", "/pet/1/owner")
        assert status == 200
        assert_wire(owner, unpopulated_joe)
        assert await call("get", "/pet/2/owner") == (404, "Not Found")  # nobody's pet
        assert await call("get", "/user/9/pets") == (404, "Not Found")
        _, ann = await call("post", "/user", {"name": "ann"})
        assert await call("get", "/user/2/pets") == (200, [])  # an empty collection is still a collection
        assert ann["pets"] == []


async def test_a_record_can_be_created_with_its_associations(call: Caller) -> None:
    with trio.fail_after(WAIT):
        await call("post", "/pet", {"name": "rex"})
        await call("post", "/pet", {"name": "tom"})
        status, joe = await call("post", "/user", {"name": "joe", "pets": [1, 2]})
        assert status == 200 and [p["id"] for p in joe["pets"]] == [1, 2]
        status, rex = await call("patch", "/pet/1", {"owner": None})
        assert status == 200 and rex["owner"] is None
        assert [p["id"] for p in (await call("get", "/user/1"))[1]["pets"]] == [2]


# ------------------------------------------------------------------------------------------------ shortcuts
async def shortcut_story(url: str) -> None:
    """Every shortcut, over a socket and over HTTP."""
    async with connect(url) as socket, http_client(url) as http:
        status, carl = await Caller(socket)("get", "/user/create", {"name": "carl", "age": 7})
        assert status == 200 and carl["name"] == "carl" and carl["age"] == 7
        response = await http.get("/user/create?name=dana")
        assert response.status_code == 200 and response.json()["id"] == 2
        for caller in (Caller(socket), Caller(http)):
            assert (await caller("get", "/user/find", {"name": "carl"}))[1] == [carl]
            assert (await caller("get", "/user/find/1"))[1] == carl
        await http.get("/pet/create?name=rex")
        await http.get("/pet/create?name=tom")
        assert [p["id"] for p in (await http.get("/user/1/pets/add/1")).json()["pets"]] == [1]
        assert [p["id"] for p in (await http.get("/user/1/pets/replace?pets=[1,2]")).json()["pets"]] == [1, 2]
        assert [p["id"] for p in (await http.get("/user/1/pets/remove/2")).json()["pets"]] == [1]
        updated = (await http.get("/user/update/1?age=8")).json()
        assert updated["age"] == 8 and updated["name"] == "carl"
        assert (await http.get("/user/destroy/1")).json()["id"] == 1
        assert (await http.get("/user/find")).json() == [(await http.get("/user/2")).json()]


async def test_shortcuts_work_in_development(settings: Settings) -> None:
    with trio.fail_after(WAIT):
        async with pets_app(settings).lifted() as url:
            await shortcut_story(url)


async def test_shortcuts_are_off_in_production_unless_forced(settings: Settings) -> None:
    in_production(settings)
    with trio.fail_after(WAIT):
        async with pets_app(settings).lifted() as url, http_client(url) as http:
            response = await http.get("/user/create?name=mallory")  # a link must not change data
            assert response.status_code == 400  # it reads as GET /user/:id with the id "create"
            assert (await http.get("/user/1/pets/add/1")).status_code == 404
            assert await User.count() == 0
        settings.blueprints.shortcuts = True
        async with pets_app(settings).lifted() as url:
            await shortcut_story(url)


async def test_shortcuts_can_be_turned_off_in_development(settings: Settings) -> None:
    settings.blueprints.shortcuts = False
    with trio.fail_after(WAIT):
        async with pets_app(settings).lifted() as url, http_client(url) as http:
            assert (await http.get("/user/create?name=mallory")).status_code == 400
            assert (await http.get("/user/find")).status_code == 400
            assert (await http.post("/user", json={"name": "ann"})).status_code == 200
            assert (await http.get("/user/1/pets/add/1")).status_code == 404
            assert await User.count() == 1


# ------------------------------------------------------------------------------------------------ where routes live
async def test_prefix_and_rest_prefix_move_the_routes(settings: Settings) -> None:
    settings.blueprints.prefix = "/api"
    settings.blueprints.rest_prefix = "/v1"
    with trio.fail_after(WAIT):
        async with pets_app(settings).lifted() as url, http_client(url) as http:
            assert (await http.post("/api/v1/user", json={"name": "joe"})).status_code == 200
            assert (await http.post("/api/v1/pet", json={"name": "rex", "owner": 1})).status_code == 200
            assert [u["name"] for u in (await http.get("/api/v1/user")).json()] == ["joe"]
            assert [p["name"] for p in (await http.get("/api/v1/user/1/pets")).json()] == ["rex"]
            assert (await http.get("/api/user/find/1")).json()["name"] == "joe"  # shortcuts: prefix only
            assert (await http.get("/api/user/create?name=ann")).json()["id"] == 2
            for missing in ("/user", "/api/user", "/v1/user", "/user/find/1", "/api/v1/user/find/1"):
                assert (await http.get(missing)).status_code in (400, 404), missing
            assert (await http.get("/user")).status_code == 404


async def test_rest_false_leaves_only_the_shortcuts(settings: Settings) -> None:
    settings.blueprints.rest = False
    with trio.fail_after(WAIT):
        async with pets_app(settings).lifted() as url, http_client(url) as http:
            assert (await http.post("/user", json={"name": "joe"})).status_code == 404
            assert (await http.get("/user")).status_code == 404
            assert (await http.get("/user/create?name=joe")).status_code == 200
            assert (await http.get("/pet/create?name=rex&owner=1")).status_code == 200
            assert (await http.get("/user/1")).status_code == 404
            assert [p["name"] for p in (await http.get("/user/1/pets")).json()] == ["rex"]  # populate stays
            assert (await http.patch("/user/1", json={"age": 3})).status_code == 404
            assert (await http.delete("/user/1")).status_code == 404
            assert await User.count() == 1


async def test_the_apps_own_route_wins_over_the_blueprint(settings: Settings) -> None:
    app = pets_app(settings)
    app.route("GET /user", lambda req, res: res.json({"mine": True}))
    with trio.fail_after(WAIT):
        async with app.lifted() as url, connect(url) as socket:
            assert (await socket.get("/user"))[0] == {"mine": True}
            assert (await socket.post("/user", {"name": "joe"}))[1].status_code == 200  # the rest stays
            assert (await socket.get("/user/1"))[0]["name"] == "joe"


async def test_a_controller_action_named_like_a_blueprint_takes_its_routes(settings: Settings) -> None:
    app = pets_app(settings)

    async def find(req: Request, res: Response) -> None:
        everyone = await User.find(sort="name")
        res.json({"names": [u["name"] for u in everyone], "model": req.options.get("model")})

    app.action("user/find", find)
    with trio.fail_after(WAIT):
        async with app.lifted() as url, http_client(url) as http:
            await http.post("/user", json={"name": "zoe"})
            await http.post("/user", json={"name": "ann"})
            assert (await http.get("/user")).json() == {"names": ["ann", "zoe"], "model": "user"}  # REST
            assert (await http.get("/user/find")).json()["names"] == ["ann", "zoe"]  # the action's own route
            assert (await http.get("/user/1")).json()["name"] == "zoe"  # other blueprints are untouched
