"""Blueprint query parameters (spec 4.5): ``where``, ``limit``, ``skip``, ``sort``, ``select``, ``omit``
and ``populate``, from a URL's query string or a socket request's data, on SQLite and PostgreSQL.

The parsing itself is tested in ``tests/orm/test_criteria.py``; these stories check that the blueprints
pass the parameters through and shape their answers by them.
"""

from __future__ import annotations

import trio

from tests.models.apps import WAIT, Caller, Pet, User, assert_wire, pets_app
from trisails import Settings
from trisails.client import connect

PEOPLE = [("ann", 31), ("bob", 25), ("cat", 40), ("dan", 25), ("eve", None)]


async def people() -> list[dict]:
    """Five users, and rex and tom who belong to ann."""
    made = [await User.create({"name": name, "age": age}) for name, age in PEOPLE]
    await Pet.create({"name": "rex", "owner": 1})
    await Pet.create({"name": "tom", "owner": 1})
    return made


def names(records: list[dict]) -> list[str]:
    return [r["name"] for r in records]


async def test_where_comes_as_json_text_or_as_an_object(call: Caller) -> None:
    with trio.fail_after(WAIT):
        await people()
        over_30 = {"age": {">": 30}}
        assert names((await call("get", "/user", {"where": '{"age":{">":30}}'}))[1]) == ["ann", "cat"]
        assert names((await call("get", "/user", {"where": over_30}))[1]) == ["ann", "cat"]
        either = {"or": [{"name": "bob"}, {"age": None}]}
        assert names((await call("get", "/user", {"where": either}))[1]) == ["bob", "eve"]
        assert names((await call("get", "/user", {"where": {"name": {"startsWith": "d"}}}))[1]) == ["dan"]


async def test_other_parameters_are_the_where_clause_when_there_is_none(call: Caller) -> None:
    with trio.fail_after(WAIT):
        await people()
        assert names((await call("get", "/user", {"age": 25}))[1]) == ["bob", "dan"]
        assert names((await call("get", "/user", {"age": "25", "name": "dan"}))[1]) == ["dan"]
        assert names((await call("get", "/user", {"age": 25, "sort": "name DESC"}))[1]) == ["dan", "bob"]
        # where wins: the other parameters are ignored once it is given
        assert names((await call("get", "/user", {"where": {"name": "cat"}, "age": 25}))[1]) == ["cat"]


async def test_limit_defaults_to_30_and_skip_pages(call: Caller) -> None:
    with trio.fail_after(WAIT):
        for n in range(35):
            await User.create({"name": f"user{n:02}"})
        status, page = await call("get", "/user")
        assert status == 200 and len(page) == 30 and page[0]["id"] == 1 and page[-1]["id"] == 30
        assert [u["id"] for u in (await call("get", "/user", {"skip": 30}))[1]] == [31, 32, 33, 34, 35]
        assert [u["id"] for u in (await call("get", "/user", {"limit": 2, "skip": "3"}))[1]] == [4, 5]
        assert len((await call("get", "/user", {"limit": 100}))[1]) == 35


async def test_the_default_limit_is_a_setting(settings: Settings) -> None:
    settings.blueprints.default_limit = 3
    with trio.fail_after(WAIT):
        async with pets_app(settings).lifted() as url, connect(url) as socket:
            await people()
            assert names((await socket.get("/user"))[0]) == ["ann", "bob", "cat"]
            assert len((await socket.get("/user", {"limit": 5}))[0]) == 5


async def test_sort_as_text_or_as_json(call: Caller) -> None:
    with trio.fail_after(WAIT):
        await people()
        by_name_desc = ["eve", "dan", "cat", "bob", "ann"]
        assert names((await call("get", "/user", {"sort": "name DESC"}))[1]) == by_name_desc
        assert names((await call("get", "/user", {"sort": '[{"name":"DESC"}]'}))[1]) == by_name_desc
        assert names((await call("get", "/user", {"sort": {"name": "DESC"}}))[1]) == by_name_desc
        # ties keep the primary key's order; every database puts null ages in the same place
        with_age = {"where": {"age": {"!=": None}}, "sort": "age ASC"}
        assert names((await call("get", "/user", with_age))[1]) == ["bob", "dan", "ann", "cat"]
        assert names((await call("get", "/user", {"sort": "age DESC, name DESC", "age": 25}))[1]) == ["dan", "bob"]


async def test_select_and_omit_shape_every_record_and_keep_the_key(call: Caller) -> None:
    with trio.fail_after(WAIT):
        await people()
        status, selected = await call("get", "/user", {"select": "name", "limit": 2})
        assert status == 200
        assert_wire(selected, [{"id": 1, "name": "ann"}, {"id": 2, "name": "bob"}])
        _, omitted = await call("get", "/user", {"omit": "createdAt,updatedAt,pets", "limit": 1})
        assert_wire(omitted, [{"id": 1, "name": "ann", "age": 31}])
        _, one = await call("get", "/user/3", {"select": "age,name"})
        assert_wire(one, {"id": 3, "name": "cat", "age": 40})
        _, one = await call("get", "/user/1", {"omit": "age"})
        assert list(one) == ["pets", "id", "createdAt", "updatedAt", "name"]


async def test_populate_picks_the_associations_to_fill_or_none(call: Caller) -> None:
    with trio.fail_after(WAIT):
        await people()
        _, (ann,) = await call("get", "/user", {"name": "ann"})
        assert names(ann["pets"]) == ["rex", "tom"]  # every association, by default
        _, (bare,) = await call("get", "/user", {"name": "ann", "populate": "false"})
        assert "pets" not in bare and list(bare) == ["id", "createdAt", "updatedAt", "name", "age"]
        _, (bare,) = await call("get", "/user", {"name": "ann", "populate": False})
        assert "pets" not in bare
        _, (filled,) = await call("get", "/user", {"name": "ann", "populate": "pets"})
        assert names(filled["pets"]) == ["rex", "tom"]
        _, pets = await call("get", "/pet")
        assert [p["owner"]["name"] for p in pets] == ["ann", "ann"]  # a to-one is the related record
        _, pets = await call("get", "/pet", {"populate": "false"})
        assert [p["owner"] for p in pets] == [1, 1]  # or its id


async def test_a_populated_collection_holds_30_records_at_most(call: Caller) -> None:
    with trio.fail_after(WAIT):
        await User.create({"name": "ann"})
        for n in range(32):
            await Pet.create({"name": f"pet{n:02}", "owner": 1})
        _, ann = await call("get", "/user/1")
        assert len(ann["pets"]) == 30 and ann["pets"][0]["name"] == "pet00"
        _, pets = await call("get", "/user/1/pets")
        assert len(pets) == 30
        _, pets = await call("get", "/user/1/pets", {"limit": 50})
        assert len(pets) == 32


async def test_populate_routes_filter_sort_and_page_the_related_records(call: Caller) -> None:
    with trio.fail_after(WAIT):
        await User.create({"name": "ann"})
        for name in ("rex", "tom", "fido", "ace"):
            await Pet.create({"name": name, "owner": 1})
        await Pet.create({"name": "stray"})
        assert names((await call("get", "/user/1/pets", {"sort": "name"}))[1]) == ["ace", "fido", "rex", "tom"]
        page = {"sort": "name DESC", "limit": 2, "skip": 1}
        assert names((await call("get", "/user/1/pets", page))[1]) == ["rex", "fido"]
        assert names((await call("get", "/user/1/pets", {"where": {"name": {"contains": "e"}}}))[1]) == ["rex", "ace"]
        _, selected = await call("get", "/user/1/pets", {"select": "name", "limit": 1})
        assert_wire(selected, [{"id": 1, "name": "rex"}])
