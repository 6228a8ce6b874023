"""A Sails developer moves logic into lifecycle callbacks (``before_create`` ... ``after_destroy``): they
run for blueprint requests and the Model API alike, can change or refuse the values, and see the
records after the commit."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.models.apps import WAIT, http_client
from trisails import App, Model, ModelError, Required, UsageError, sails
from trisails.client import connect


def seen(what: str, value: Any) -> None:
    sails.app.state.setdefault("seen", []).append((what, value))


class Account(Model):
    email = Required(str)
    name = Required(str)

    @classmethod
    async def before_create(cls, values: dict[str, Any]) -> None:
        if values.get("name") == "root":
            raise UsageError("name", "`name`: root is not a name you can take.", code="E_INVALID_NEW_RECORD")
        values["email"] = str(values.get("email", "")).strip().lower()
        seen("before_create", dict(values))

    @classmethod
    def after_create(cls, record: dict[str, Any]) -> None:
        seen("after_create", record["email"])

    @classmethod
    def before_update(cls, values: dict[str, Any]) -> None:
        if "email" in values:
            values["email"] = values["email"].lower()

    @classmethod
    async def after_update(cls, record: dict[str, Any]) -> None:
        seen("after_update", (record["id"], record["email"], await cls.count()))

    @classmethod
    def before_destroy(cls, id: Any) -> None:
        if id == 1:
            raise UsageError("id", "The first account cannot be destroyed.", code="E_INVALID_CRITERIA")

    @classmethod
    def after_destroy(cls, record: dict[str, Any]) -> None:
        seen("after_destroy", record["name"])


async def test_callbacks_shape_refuse_and_follow_writes_over_http_sockets_and_the_model_api() -> None:
    app = App()
    app.model(Account)
    with trio.fail_after(WAIT):
        async with app.lifted() as url, http_client(url) as http, connect(url) as io:
            first = (await http.post("/account", json={"email": "  Ann@Example.COM ", "name": "ann"})).json()
            assert first["email"] == "ann@example.com"
            second, _ = await io.post("/account", {"email": "BOB@example.com", "name": "bob"})
            assert second["email"] == "bob@example.com"

            refused = await http.post("/account", json={"email": "x@example.com", "name": "root"})
            body, jwr = await io.post("/account", {"email": "x@example.com", "name": "root"})
            assert refused.status_code == jwr.status_code == 400 and refused.json() == body
            assert "root is not a name" in body["details"] and await Account.count() == 2

            updated, _ = await io.patch(f"/account/{second['id']}", {"email": "Bob@Work.example"})
            assert updated["email"] == "bob@work.example"

            body, jwr = await io.delete(f"/account/{first['id']}")
            assert jwr.status_code == 400 and "cannot be destroyed" in body["details"]
            assert await Account.destroy(second["id"]) is not None
            assert (await Account.create({"email": "CAT@example.com", "name": "cat"}))["email"] == "cat@example.com"
            assert app.state["seen"] == [
                ("before_create", {"email": "ann@example.com", "name": "ann"}),
                ("after_create", "ann@example.com"),
                ("before_create", {"email": "bob@example.com", "name": "bob"}),
                ("after_create", "bob@example.com"),
                ("after_update", (second["id"], "bob@work.example", 2)),
                ("after_destroy", "bob"),
                ("before_create", {"email": "cat@example.com", "name": "cat"}),
                ("after_create", "cat@example.com"),
            ]


def test_a_sails_spelling_of_a_callback_is_refused_with_the_python_one() -> None:
    with pytest.raises(ModelError, match="Sails' beforeCreate is written before_create"):

        class Bad(Model):
            name = Required(str)

            @classmethod
            def beforeCreate(cls, values: dict[str, Any]) -> None:  # noqa: N802 - the mistake under test
                pass
