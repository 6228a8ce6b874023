"""Bad input: every mistake is a 400 whose JSON body says what was wrong (``{code, details, message}``, as
Sails' ``formatUsageError``), a missing record a 404, and a refused write changes nothing and publishes
nothing. Never a 500, and no development tip in production. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import trio

from tests.models.apps import WAIT, Caller, Inbox, Pet, User, http_client, in_production, pets_app
from trisails import Settings
from trisails.client import connect

TIP = "**The following additional tip will not be shown in production**"


def refusal(answer: tuple[int, Any], code: str, *mentions: str) -> dict[str, Any]:
    """Check ``answer`` is a 400 with Sails' error body, of ``code``, whose details mention each of ``mentions``."""
    status, body = answer
    assert status == 400, answer
    assert isinstance(body, dict) and list(body) == ["code", "details", "message"], body
    assert body["code"] == code, body
    for text in mentions:
        assert text in body["details"], (text, body["details"])
    return body


async def test_a_malformed_or_unknown_query_is_refused_naming_the_parameter(call: Caller) -> None:
    with trio.fail_after(WAIT):
        body = refusal(await call("get", "/user", {"where": "{bad"}), "E_INVALID_CRITERIA", "`where`", "JSON")
        assert body["message"].startswith(
            "The server could not fulfill this request (`GET /user`) due to a problem with the parameters "
            "that were sent."
        )
        assert TIP in body["message"]  # in development
        refusal(await call("get", "/user", {"where": '{"nope": 1}'}), "E_INVALID_CRITERIA", "nope")
        refusal(await call("get", "/user", {"where": {"age": {"~": 1}}}), "E_INVALID_CRITERIA", "~")
        refusal(await call("get", "/user", {"where": "5"}), "E_INVALID_CRITERIA", "where")
        refusal(await call("get", "/user", {"nope": "1"}), "E_INVALID_CRITERIA", "nope")  # an implicit where
        refusal(await call("get", "/user", {"age": "old"}), "E_INVALID_CRITERIA", "age")
        refusal(await call("get", "/user", {"sort": "nope DESC"}), "E_INVALID_CRITERIA", "sort", "nope")
        refusal(await call("get", "/user", {"sort": "name sideways"}), "E_INVALID_CRITERIA", "sideways")
        refusal(await call("get", "/user", {"sort": "{bad"}), "E_INVALID_CRITERIA", "sort")
        refusal(await call("get", "/user", {"select": "name", "omit": "age"}), "E_INVALID_CRITERIA", "select", "omit")
        refusal(await call("get", "/user", {"select": "nope"}), "E_INVALID_CRITERIA", "nope")
        refusal(await call("get", "/user", {"populate": "nope"}), "E_INVALID_CRITERIA", "nope")
        refusal(await call("get", "/user", {"limit": "-1"}), "E_INVALID_CRITERIA", "limit")
        refusal(await call("get", "/user", {"skip": "some"}), "E_INVALID_CRITERIA", "skip")
        refusal(await call("get", "/user/1/pets", {"sort": "nope"}), "E_INVALID_CRITERIA", "nope")


async def test_an_id_that_cannot_be_one_is_refused(call: Caller) -> None:
    with trio.fail_after(WAIT):
        await User.create({"name": "ann"})
        refusal(await call("get", "/user/abc"), "E_INVALID_CRITERIA", "'abc'")
        refusal(await call("patch", "/user/abc", {"age": 1}), "E_INVALID_CRITERIA", "'abc'")
        refusal(await call("delete", "/user/abc"), "E_INVALID_CRITERIA", "'abc'")
        refusal(await call("get", "/user/abc/pets"), "E_INVALID_CRITERIA", "'abc'")
        refusal(await call("put", "/user/1/pets/abc"), "E_INVALID_CRITERIA", "'abc'")
        assert await User.count() == 1


async def test_a_missing_record_is_not_found(call: Caller) -> None:
    with trio.fail_after(WAIT):
        await User.create({"name": "ann"})
        await Pet.create({"name": "rex"})
        for verb, url in [
            ("get", "/user/9"),
            ("patch", "/user/9"),
            ("put", "/user/9"),
            ("delete", "/user/9"),
            ("get", "/user/9/pets"),
            ("put", "/user/9/pets/1"),
            ("delete", "/user/9/pets/1"),
            ("put", "/user/1/pets/9"),
            ("get", "/pet/1/owner"),  # rex has no owner
        ]:
            assert await call(verb, url, {"age": 1} if verb in ("patch", "put") and "pets" not in url else None) == (
                404,
                "Not Found",
            ), (verb, url)


async def test_values_a_model_refuses_are_named(call: Caller) -> None:
    with trio.fail_after(WAIT):
        await User.create({"name": "ann"})
        refusal(await call("post", "/user", {"age": 3}), "E_INVALID_NEW_RECORD", "`name`")  # required
        refusal(await call("post", "/user", {"name": None}), "E_INVALID_NEW_RECORD", "`name`")
        refusal(await call("post", "/user", {"name": "bob", "age": "x"}), "E_INVALID_NEW_RECORD", "`age`", "'x'")
        refusal(await call("post", "/user", {"name": "bob", "nope": 1}), "E_INVALID_NEW_RECORD", "`nope`")
        refusal(await call("post", "/user", {"name": "bob", "id": 5}), "E_INVALID_NEW_RECORD", "`id`")
        refusal(await call("post", "/user", {"name": "bob", "pets": [9]}), "E_INVALID_NEW_RECORD", "pets", "9")
        refusal(await call("post", "/user", {"name": "bob", "pets": "[x"}), "E_INVALID_NEW_RECORD", "pets")
        refusal(await call("post", "/pet", {"name": "rex", "owner": 9}), "E_INVALID_NEW_RECORD", "owner", "9")
        refusal(await call("post", "/user", [1, 2]), "E_INVALID_NEW_RECORD", "object")
        refusal(await call("patch", "/user/1", {"age": "x"}), "E_INVALID_VALUES_TO_SET", "`age`")
        refusal(await call("patch", "/user/1", {"name": None}), "E_INVALID_VALUES_TO_SET", "`name`")
        refusal(await call("patch", "/user/1", {"nope": 1}), "E_INVALID_VALUES_TO_SET", "`nope`")
        refusal(await call("put", "/user/1/pets", [9]), "E_INVALID_VALUES_TO_SET", "9")
        refusal(await call("put", "/user/1/pets", {"pets": "nothing"}), "E_INVALID_VALUES_TO_SET", "pets")
        refusal(await call("put", "/user/1/pets", {"pets": "[x"}), "E_INVALID_VALUES_TO_SET", "pets", "JSON")
        refusal(await call("patch", "/user/1", {"pets": "[x"}), "E_INVALID_VALUES_TO_SET", "pets", "JSON")
        assert await User.count() == 1


async def test_a_taken_unique_value_is_E_UNIQUE(call: Caller) -> None:
    with trio.fail_after(WAIT):
        await call("post", "/user", {"name": "ann"})
        await call("post", "/user", {"name": "bob"})
        refusal(await call("post", "/user", {"name": "ann"}), "E_UNIQUE", "`name`")
        refusal(await call("patch", "/user/2", {"name": "ann"}), "E_UNIQUE", "`name`")
        assert (await call("patch", "/user/1", {"name": "ann", "age": 3}))[0] == 200  # its own value is fine
        assert [u["name"] for u in await User.find()] == ["ann", "bob"]


async def test_a_refused_write_changes_nothing_and_publishes_nothing(settings: Settings) -> None:
    with trio.fail_after(WAIT):
        async with pets_app(settings).lifted() as url, connect(url) as a, connect(url) as b:
            await User.create({"name": "ann"})
            await User.create({"name": "bob"})
            await Pet.create({"name": "rex", "owner": 1})
            before = await User.find(populate=True)
            pets_before = await Pet.find()
            heard = Inbox(a, "user", "pet")
            await a.get("/user")
            await a.get("/pet")
            for verb, url_, data in [
                ("post", "/user", {"age": 3}),
                ("post", "/user", {"name": "ann"}),
                ("post", "/user", {"name": "cat", "pets": [1, 99]}),  # rex exists, 99 does not
                ("post", "/pet", {"name": "tom", "owner": 99}),
                ("patch", "/user/2", {"name": "ann", "age": 7}),  # a unique name taken, and an age
                ("patch", "/user/2", {"age": 8, "pets": [1, 99]}),
                ("patch", "/pet/1", {"owner": 99}),
                ("put", "/user/2/pets", [1, 99]),
                ("put", "/user/2/pets/99", None),
            ]:
                _, jwr = await b.request(verb, url_, data)
                assert jwr.status_code in (400, 404), (verb, url_, jwr)
            assert await User.find(populate=True) == before
            assert await Pet.find() == pets_before
            await heard.nothing_more_than(0)


async def test_production_answers_without_the_tip_and_never_500(settings: Settings) -> None:
    in_production(settings)
    with trio.fail_after(WAIT):
        async with pets_app(settings).lifted() as url, connect(url) as socket, http_client(url) as http:
            await User.create({"name": "ann"})
            for caller in (Caller(socket), Caller(http)):
                for verb, url_, data in [
                    ("get", "/user", {"where": "{bad"}),
                    ("get", "/user", {"sort": "nope"}),
                    ("get", "/user/abc", None),
                    ("post", "/user", {"name": "ann"}),
                    ("post", "/user", {"age": "x"}),
                    ("patch", "/user/1", {"nope": 1}),
                    ("put", "/user/1/pets", [99]),
                    ("post", "/user", [1]),
                ]:
                    status, body = await caller(verb, url_, data)
                    assert status == 400, (verb, url_, body)
                    assert body["message"] == (
                        f"The server could not fulfill this request (`{verb.upper()} {url_}`) due to a problem "
                        "with the parameters that were sent.  See the `details` for more info."
                    )
                assert await caller("get", "/user/9") == (404, "Not Found")
