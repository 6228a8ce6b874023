"""`migrate = "alter"` as a developer meets it: a model gains attributes between two lifts, and the
table gains their columns, the rows already there kept and filled in; what alter will not do (drop,
rename, retype) is said, not done."""

from __future__ import annotations

import logging

import pytest
import trio

from tests.models.apps import WAIT, http_client
from trisails import App, ConfigError, Model, Optional, Required, Settings


def first_version() -> type[Model]:
    class Player(Model):
        name = Required(str)
        rank = Optional(int)

    return Player


def second_version() -> tuple[type[Model], type[Model]]:
    """The same model, edited: new attributes of every kind, and a relation to a new model."""

    class Team(Model):
        title = Required(str)

    class Player(Model):
        name = Required(str)
        rank = Optional(int)
        email = Optional(str)  # Pony's non-null text: existing rows get ""
        score = Optional(float)  # nullable: existing rows get null
        nickname = Required(str, default="anon")  # a constant default fills the existing rows
        active = Required(bool, default=True)
        team = Optional(Team)  # a one-way relation to a table that does not exist yet
        handle = Optional(str, unique=True)  # SQLite cannot add a UNIQUE column: an index is made

    return Player, Team


def app_of(settings: Settings, *models: type[Model]) -> App:
    app = App(settings)
    for model in models:
        app.model(model)
    return app


async def test_a_model_that_gained_attributes_gets_their_columns_and_keeps_its_rows(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.datastores.migrate = "alter"
    with trio.fail_after(WAIT):
        async with app_of(settings, first_version()).lifted() as url, http_client(url) as http:
            ann = (await http.post("/player", json={"name": "ann", "rank": 3})).json()

        Player, Team = second_version()
        with caplog.at_level(logging.INFO, logger="trisails.orm"):
            async with app_of(settings, Player, Team).lifted() as url, http_client(url) as http:
                old = (await http.get(f"/player/{ann['id']}")).json()
                assert (old["name"], old["rank"], old["createdAt"]) == ("ann", 3, ann["createdAt"])
                assert (old["email"], old["score"], old["nickname"], old["active"], old["team"]) == ("", None, "anon", True, None)

                reds = (await http.post("/team", json={"title": "reds"})).json()
                bob = (await http.post("/player", json={"name": "bob", "email": "b@x.io", "score": 1.5, "team": reds["id"], "handle": "b"})).json()
                taken = await http.post("/player", json={"name": "cy", "handle": "b"})
                assert (taken.status_code, taken.json()["code"]) == (400, "E_UNIQUE")
                assert (bob["nickname"], bob["active"], bob["team"]["title"]) == ("anon", True, "reds")
                changed = (await http.patch(f"/player/{ann['id']}", json={"nickname": "a", "active": False})).json()
                assert (changed["nickname"], changed["active"]) == ("a", False)
        added = [r.getMessage() for r in caplog.records if "adding the column" in r.getMessage()]
        assert len(added) == 6 + ("sqlite" in settings.datastores.url), added  # + the unique index on SQLite

        async with app_of(settings, Player, Team).lifted():  # a third lift has nothing to add
            assert await Player.count() == 2


async def test_alter_keeps_a_column_no_attribute_maps_and_says_so(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    settings.datastores.migrate = "alter"
    with trio.fail_after(WAIT):
        Player = first_version()
        async with app_of(settings, Player).lifted():
            await Player.create({"name": "ann", "rank": 3})

        class Player(Model):  # type: ignore[no-redef]  # rank renamed to level: alter cannot tell
            name = Required(str)
            level = Optional(int)

        with caplog.at_level(logging.INFO, logger="trisails.orm"):
            async with app_of(settings, Player).lifted():
                assert (await Player.find_one({"name": "ann"}))["level"] is None  # a new column, not rank's data
                await Player.create({"name": "bob", "level": 2})
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("the column rank, which no attribute maps any more; it is kept" in w for w in warnings), warnings
        assert any("never drops, renames or retypes" in w for w in warnings)


async def test_a_required_attribute_without_a_default_stops_the_lift_with_what_to_do(settings: Settings) -> None:
    settings.datastores.migrate = "alter"
    with trio.fail_after(WAIT):
        Player = first_version()
        async with app_of(settings, Player).lifted():
            await Player.create({"name": "ann"})

        class Player(Model):  # type: ignore[no-redef]
            name = Required(str)
            rank = Optional(int)
            country = Required(str)

        with pytest.raises(ConfigError, match=r"cannot add the column 'country' to the table '\w+': it must hold a value") as raised:
            async with app_of(settings, Player).lifted():
                pass  # pragma: no cover
        assert "Give country a constant default=" in str(raised.value)
        assert "make it Optional" in str(raised.value)


async def test_safe_still_touches_nothing(settings: Settings) -> None:
    settings.datastores.migrate = "alter"
    with trio.fail_after(WAIT):
        async with app_of(settings, first_version()).lifted():
            pass
        settings.datastores.migrate = "safe"
        Player, Team = second_version()
        with pytest.raises(ConfigError, match="do not fit the models"):
            async with app_of(settings, Player, Team).lifted():
                pass  # pragma: no cover
