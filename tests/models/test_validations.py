"""A Sails developer declares attribute validations (``is_email``, ``min``, ``max``, ``min_length``,
``max_length``, ``is_in``, ``regex``, ``custom``): a value that breaks one is a 400 naming the attribute
and the rule, the same over HTTP and sockets, and nothing is written or published."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.models.apps import WAIT, Inbox, http_client
from trisails import App, Model, ModelError, Optional, Required, ValidationError
from trisails.client import connect


def even(value: int) -> bool:
    return value % 2 == 0


class Member(Model):
    email = Required(str, unique=True, is_email=True)
    nickname = Required(str, min_length=2, max_length=12)
    age = Optional(int, min=13, max=120)
    role = Optional(str, is_in=["admin", "player"])
    code = Optional(str, regex=r"^[A-Z]{3}-\d+$")
    seats = Optional(int, custom=even)
    homepage = Optional(str, is_url=True)


GOOD = {"email": "ann@example.com", "nickname": "ann", "age": 31, "role": "player", "code": "ABC-1", "seats": 2}

REFUSED = [
    ({"email": "ann-at-example.com"}, "email", "is_email"),
    ({"nickname": "a"}, "nickname", "min_length"),
    ({"nickname": "a" * 13}, "nickname", "max_length"),
    ({"age": 12}, "age", "min"),
    ({"age": 121}, "age", "max"),
    ({"role": "owner"}, "role", "is_in"),
    ({"code": "abc-1"}, "code", "regex"),
    ({"seats": 3}, "seats", "custom"),
    ({"homepage": "ftp://example.com"}, "homepage", "is_url"),
]


@pytest.mark.parametrize(("change", "attribute", "rule"), REFUSED, ids=[r for _, _, r in REFUSED])
async def test_a_value_breaking_a_rule_is_the_same_400_over_http_and_sockets_and_nothing_happens(
    change: dict[str, Any], attribute: str, rule: str
) -> None:
    app = App()
    app.model(Member)
    with trio.fail_after(WAIT):
        async with app.lifted() as url, http_client(url) as http, connect(url) as watcher, connect(url) as writer:
            heard = Inbox(watcher, "member")
            await watcher.get("/member")  # watches the model: it would hear a created or updated message
            over_http = await http.post("/member", json={**GOOD, **change})
            body, jwr = await writer.post("/member", {**GOOD, **change})
            assert over_http.status_code == jwr.status_code == 400
            assert over_http.json() == body
            assert body["code"] == "E_INVALID_NEW_RECORD"
            assert f"`{attribute}`" in body["details"] and f"(rule `{rule}`)" in body["details"]
            assert await Member.count() == 0

            ann, _ = await writer.post("/member", GOOD)
            body, jwr = await writer.patch(f"/member/{ann['id']}", change)
            assert jwr.status_code == 400 and body["code"] == "E_INVALID_VALUES_TO_SET" and f"(rule `{rule}`)" in body["details"]
            assert await Member.find_one(ann["id"]) == ann  # unchanged

            # the first message the watcher hears is the good create: the refused writes published nothing
            (event, message), = await heard.until(1)
            assert message["verb"] == "created" and message["id"] == ann["id"]


async def test_the_model_api_raises_a_validation_error_naming_the_rule() -> None:
    app = App()
    app.model(Member)
    async with app.lifted():
        with pytest.raises(ValidationError) as refused:
            await Member.create({**GOOD, "age": 7})
        assert (refused.value.parameter, refused.value.rule, refused.value.code) == ("age", "min", "E_INVALID_NEW_RECORD")
        assert "at least 13" in refused.value.details
        assert (await Member.create({**GOOD, "age": None}))["age"] is None  # an Optional left empty is not checked


def test_rules_are_checked_when_the_model_is_declared() -> None:
    with pytest.raises(ModelError, match="Sails' validation isEmail= is written is_email= in trisails"):
        Optional(str, isEmail=True)
    with pytest.raises(ModelError, match="the rule is_in takes a list"):
        Optional(str, is_in="admin")
    with pytest.raises(ModelError, match="the rule regex takes a regular expression"):
        Optional(str, regex="(")
    with pytest.raises(ModelError, match="the rule custom takes a function"):
        Optional(int, custom=3)
