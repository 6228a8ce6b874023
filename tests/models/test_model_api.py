"""The model class as an app's handle on its records: ``await User.create(...)`` and friends in actions and
at lift, declarations that are refused with a clear message, and models that are not shaped like the
default (no timestamps, another identity, their own primary key). On SQLite and on PostgreSQL, but for
the stories where the database plays no part (they use an app's default scratch SQLite file).
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.models.apps import WAIT, Inbox, Pet, User, assert_timestamp, assert_wire, http_client, pets_app, rooms
from trisails import (
    App,
    ConfigError,
    Model,
    ModelError,
    Optional,
    PrimaryKey,
    Request,
    Required,
    Response,
    Set,
    Settings,
    UsageError,
)
from trisails.client import connect


class Note(Model):
    text = Required(str)


async def one(model: type[Model], id_or_where: Any) -> dict[str, Any]:
    """The record ``model.find_one`` finds, which must exist."""
    found = await model.find_one(id_or_where)
    assert found is not None, (model, id_or_where)
    return found


# ------------------------------------------------------------------------------------------------ in actions
async def test_an_action_works_with_records_through_the_model_class(settings: Settings) -> None:
    app = pets_app(settings)

    async def adopt(req: Request, res: Response) -> None:
        owner = await User.find_one({"name": req.param("owner")}) or await User.create({"name": req.param("owner")})
        pet = await Pet.create({"name": req.param("pet")})
        res.json(await User.add_to(owner["id"], "pets", [pet["id"]]))

    app.route("POST /adopt", adopt)
    with trio.fail_after(WAIT):
        async with app.lifted() as url, http_client(url) as http:
            first = (await http.post("/adopt", json={"owner": "ann", "pet": "rex"})).json()
            second = (await http.post("/adopt", json={"owner": "ann", "pet": "tom"})).json()
            assert first["id"] == second["id"] == 1
            assert [p["name"] for p in second["pets"]] == ["rex", "tom"]
            assert_wire(second, (await http.get("/user/1")).json())


async def test_bootstrap_seeds_records_before_the_app_accepts_requests() -> None:
    app = pets_app()

    async def bootstrap(app: App) -> None:
        if await User.count() == 0:
            await User.create({"name": "admin", "age": 40})

    app.on_lift(bootstrap)
    with trio.fail_after(WAIT):
        async with app.lifted() as url, http_client(url) as http:
            assert [u["name"] for u in (await http.get("/user")).json()] == ["admin"]


async def test_the_model_api_reads_and_writes(settings: Settings) -> None:
    with trio.fail_after(WAIT):
        async with pets_app(settings).lifted():
            ann = await User.create({"name": "ann", "age": 31})
            assert list(ann) == ["pets", "id", "createdAt", "updatedAt", "name", "age"]  # as the blueprints answer
            assert_timestamp(ann["createdAt"])
            await User.create({"name": "bob", "age": 25})
            await User.create({"name": "cat"})
            assert await User.count() == 3
            assert await User.count({"age": {">=": 25}}) == 2
            assert await User.count('{"name": "cat"}') == 1  # the where language, as JSON text too
            found = await User.find({"age": {"!=": None}}, sort="age DESC")
            assert [u["name"] for u in found] == ["ann", "bob"]
            assert "pets" not in found[0]  # populate is off unless asked for
            assert [u["name"] for u in await User.find(sort=[{"name": "DESC"}], limit=2, skip=1)] == ["bob", "ann"]
            assert (await User.find({"name": "ann"}, populate=True))[0]["pets"] == []
            assert (await one(User, 1))["name"] == "ann"
            assert (await one(User, "2"))["name"] == "bob"
            assert (await one(User, {"name": "cat"}))["id"] == 3
            assert await User.find_one(99) is None and await User.find_one({"name": "zed"}) is None
            with pytest.raises(UsageError, match="More than one user"):
                await User.find_one({"age": {">": 1}})
            older = await User.update(2, {"age": 26})
            assert older is not None and older["age"] == 26 and older["createdAt"] <= older["updatedAt"]
            assert await User.update(99, {"age": 1}) is None
            gone = await User.destroy(3)
            assert gone is not None and gone["name"] == "cat"
            assert await User.destroy(3) is None
            assert await User.count() == 2


async def test_the_model_api_changes_collections(settings: Settings) -> None:
    with trio.fail_after(WAIT):
        async with pets_app(settings).lifted():
            await User.create({"name": "ann"})
            for name in ("rex", "tom", "fido"):
                await Pet.create({"name": name})
            ann = await User.add_to(1, "pets", [1, 2])
            assert ann is not None and [p["name"] for p in ann["pets"]] == ["rex", "tom"]
            ann = await User.remove_from(1, "pets", [1])
            assert ann is not None and [p["name"] for p in ann["pets"]] == ["tom"]
            ann = await User.replace_collection(1, "pets", [3, 1])
            assert ann is not None and [p["name"] for p in ann["pets"]] == ["rex", "fido"]
            assert await User.add_to(99, "pets", [1]) is None
            with pytest.raises(UsageError, match="not a collection"):
                await User.add_to(1, "name", [1])
            with pytest.raises(UsageError, match="there is no pet with the id 99"):
                await User.add_to(1, "pets", [99])
            assert (await one(Pet, 2))["owner"] is None


async def test_run_gives_a_worker_thread_a_session_for_pony_queries(settings: Settings) -> None:
    with trio.fail_after(WAIT):
        async with pets_app(settings).lifted():
            for name, age in (("ann", 31), ("bob", 25), ("cat", 40)):
                await User.create({"name": name, "age": age})

            def over_30() -> list[dict[str, Any]]:
                entity = User.entity()  # the running app's Pony entity, in the worker thread too
                return [u.to_dict(only=["name", "age"]) for u in entity.select(lambda u: u.age > 30).order_by(1)]

            assert await User.run(over_30) == [{"name": "ann", "age": 31}, {"name": "cat", "age": 40}]
            assert await User.run(lambda n: User.entity()[n].name, 2) == "bob"

            def rename() -> None:
                User.entity()[1].name = "anna"

            await User.run(rename)  # committed when the function returns
            assert (await one(User, 1))["name"] == "anna"

            def leak() -> Any:
                return User.entity()[1]

            with pytest.raises(ModelError, match="entities cannot leave"):
                await User.run(leak)

            def fail() -> None:
                User.entity()[1].name = "nobody"
                raise RuntimeError("changed my mind")

            with pytest.raises(RuntimeError, match="changed my mind"):
                await User.run(fail)
            assert (await one(User, 1))["name"] == "anna"  # rolled back


async def test_the_model_api_refuses_bad_values_and_publishes_nothing(settings: Settings) -> None:
    with trio.fail_after(WAIT):
        async with pets_app(settings).lifted() as url, connect(url) as a:
            heard = Inbox(a, "user", "pet")
            await a.get("/user")
            await a.get("/pet")
            with pytest.raises(UsageError, match="age") as refused:
                await User.create({"name": "ann", "age": "x"})
            assert refused.value.code == "E_INVALID_NEW_RECORD"
            with pytest.raises(UsageError) as taken:
                await User.create({"name": "ann"}) and await User.create({"name": "ann"})
            assert taken.value.code == "E_UNIQUE"
            await User.update(1, {"age": 3})
            await Pet.create({"name": "rex", "owner": 1})
            await User.destroy(1)
            await heard.nothing_more_than(0)  # as in Sails, only the blueprints publish


# ------------------------------------------------------------------------------------------------ misuse
async def test_a_model_is_used_inside_a_lifted_app_that_has_it() -> None:
    with pytest.raises(ModelError, match="outside a lifted app"):
        await User.count()
    with pytest.raises(ModelError, match="outside a lifted app"):
        User.get_room_name(1)
    app = App()
    app.model(Note)
    with trio.fail_after(WAIT):
        async with app.lifted():
            assert await Note.count() == 0
            unregistered = r"User is not a model of the running app: register it with app.model\(User\)"
            with pytest.raises(ModelError, match=unregistered):
                await User.count()
    with pytest.raises(ModelError, match="is a model declaration, not a record"):
        User()


def test_declarations_that_cannot_work_are_refused() -> None:
    with pytest.raises(ModelError, match="cannot be named 'find'"):

        class Finder(Model):
            find = Required(str)  # type: ignore[assignment]

    with pytest.raises(ModelError, match="cannot be named '_secret'"):

        class Hidden(Model):
            _secret = Required(str)

    with pytest.raises(ModelError, match="one PrimaryKey at most"):

        class Twice(Model):
            a = PrimaryKey(int)
            b = PrimaryKey(str)

    with pytest.raises(ModelError, match="timestamps=False"):

        class Stamped(Model):
            created_at = Required(int)

    with pytest.raises(ModelError, match="must be a Python identifier"):

        class Dashed(Model, identity="my-model"):
            text = Required(str)

    class OwnStamps(Model, timestamps=False):
        created_at = Required(int)  # fine once the model keeps its own time

    assert list(OwnStamps.attributes) == ["created_at"]


async def test_an_app_refuses_models_it_cannot_serve() -> None:
    class Orphan(Model):
        name = Required(str)
        parent = Optional("Ghost")

    class Other(Model, identity="note"):
        body = Required(str)

    app = App()
    with pytest.raises(ConfigError, match="subclass of trisails.Model"):
        app.model(Model)
    app.model(Note)
    with pytest.raises(ConfigError, match="two models have the identity 'note'"):
        app.model(Other)
    app.model(Orphan)
    with trio.fail_after(WAIT):
        with pytest.raises(ConfigError, match=r"Orphan.parent refers to 'Ghost', which is not a model of this app"):
            async with app.lifted():
                pass  # pragma: no cover - the lift fails


# ------------------------------------------------------------------------------------------------ other shapes
class Reading(Model, timestamps=False):
    value = Required(float)


class Person(Model, identity="human"):
    nickname = Required(str)


class Country(Model):
    code = PrimaryKey(str)
    name = Required(str)
    cities = Set("City")


class City(Model):
    name = Required(str)
    country = Required(Country)


async def test_a_model_without_timestamps_has_none(settings: Settings) -> None:
    app = App(settings)
    app.model(Reading)
    with trio.fail_after(WAIT):
        async with app.lifted() as url, http_client(url) as http:
            assert (await http.post("/reading", json={"value": 1.5})).json() == {"id": 1, "value": 1.5}
            assert (await http.patch("/reading/1", json={"value": 2})).json() == {"id": 1, "value": 2.0}
            assert (await http.get("/reading", params={"sort": "createdAt"})).status_code == 400


async def test_identity_names_the_routes_rooms_and_event() -> None:
    app = App()
    app.model(Person)
    with trio.fail_after(WAIT):
        async with app.lifted() as url, connect(url) as a, http_client(url) as http:
            heard = Inbox(a, "human", "person")
            await a.get("/human")
            assert "sails_model_create_human" in rooms(app, a)
            ace = (await http.post("/human", json={"nickname": "ace"})).json()
            assert (await http.get("/person")).status_code == 404
            assert_wire(await heard.until(1), [("human", {"verb": "created", "data": ace, "id": 1})])
            assert Person.get_room_name(1) == "sails_model_human_1:human"


async def test_a_model_with_its_own_text_primary_key(settings: Settings) -> None:
    app = App(settings)
    app.model(Country)
    app.model(City)
    with trio.fail_after(WAIT):
        async with app.lifted() as url, connect(url) as a, connect(url) as b:
            heard = Inbox(a, "country", "city")
            await a.get("/country")
            france, _ = await b.post("/country", {"code": "fr", "name": "France"})
            assert list(france) == ["cities", "code", "createdAt", "updatedAt", "name"]
            assert france["code"] == "fr" and france["cities"] == []
            paris, _ = await b.post("/city", {"name": "Paris", "country": "fr"})
            assert paris["country"]["code"] == "fr"
            assert (await b.get("/country/fr"))[0]["cities"] == [{**paris, "country": "fr"}]
            renamed, _ = await b.patch("/country/fr", {"name": "République française", "code": "xx"})
            assert renamed["code"] == "fr"  # the primary key never changes
            assert Country.get_room_name("fr") == "sails_model_country_fr:country"
            assert app.sockets.members("sails_model_country_fr:country") == {a.id, b.id}
            messages = await heard.until(3)
            assert_wire(messages[0], ("country", {"verb": "created", "data": france, "id": "fr"}))
            assert_wire(messages[1], ("country", {"id": "fr", "verb": "addedTo", "attribute": "cities", "addedId": 1}))
            assert messages[2][1]["verb"] == "updated" and messages[2][1]["id"] == "fr"
            changes = {"name": "République française", "code": "fr", "updatedAt": renamed["updatedAt"]}
            assert messages[2][1]["data"] == changes
            body, jwr = await b.post("/country", {"name": "Nowhere"})
            assert jwr.status_code == 400 and body["code"] == "E_INVALID_NEW_RECORD" and "code" in body["details"]
            assert (await b.get("/country/zz"))[1].status_code == 404


async def test_a_usage_error_escaping_an_action_is_a_400_on_both_transports_as_the_docs_say() -> None:
    app = App()
    app.model(Note)

    @app.action("note/careless")
    async def careless(req: Request, res: Response) -> None:
        return res.ok(await Note.create({"text": req.param("text"), "colour": "red"}))  # no such attribute

    with trio.fail_after(WAIT):
        async with app.lifted() as url, http_client(url) as http, connect(url) as io:
            over_http = await http.post("/note/careless", json={"text": "hi"})
            body, jwr = await io.post("/note/careless", {"text": "hi"})
    assert over_http.status_code == jwr.status_code == 400
    assert over_http.json() == body and body["code"] == "E_INVALID_NEW_RECORD" and "colour" in body["details"]
