"""What one client may ask the blueprints for: never more records than ``blueprints.max_limit``."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.models.apps import Pet, User
from trisails import App, ConfigError, Settings
from trisails.client import connect


def crowded_app(tmp_path: Path, settings: Settings | None = None) -> App:
    settings = settings or Settings()
    settings.datastores.url = f"sqlite:///{tmp_path}/db.sqlite"
    app = App(settings)
    app.model(User)
    app.model(Pet)
    return app


async def fill(app: App, users: int, pets_of_first: int = 0) -> None:
    binding = app.models["user"]
    pet = app.models["pet"]

    def insert() -> None:
        first = None
        for n in range(users):
            user = binding.entity(name=f"user {n}")
            first = first or user
        for n in range(pets_of_first):
            pet.entity(name=f"pet {n}", owner=first)

    assert app.datastore is not None
    await app.datastore.run(insert)


async def test_a_client_asking_for_a_hundred_thousand_records_gets_at_most_max_limit(tmp_path: Path) -> None:
    """Four sockets reading ``/user?limit=100000`` slowed every other request to seconds. Now a
    ``limit`` past ``blueprints.max_limit`` (1,000 by default) is lowered to it, over HTTP and sockets,
    and on a populate route too; ``skip`` still pages through the rest."""
    app = crowded_app(tmp_path)
    assert app.settings.blueprints.max_limit == 1_000
    async with app.lifted() as url, httpx.AsyncClient(base_url=url) as http:
        await fill(app, 1_005, pets_of_first=1_003)
        everything = await http.get("/user", params={"limit": "100000", "populate": "false"})
        assert everything.status_code == 200 and len(everything.json()) == 1_000
        rest = await http.get("/user", params={"limit": "100000", "skip": "1000", "populate": "false"})
        assert len(rest.json()) == 5
        assert len((await http.get("/user/1/pets", params={"limit": "5000"})).json()) == 1_000
        async with connect(url) as socket:
            body, jwr = await socket.get("/user?limit=100000&populate=false")
            assert jwr.status_code == 200 and len(body) == 1_000
            body, _ = await socket.request("get", "/user", {"limit": 100_000, "populate": False})
            assert len(body) == 1_000
        assert len((await http.get("/user", params={"limit": "7"})).json()) == 7  # below it, as asked


async def test_max_limit_is_a_setting(tmp_path: Path) -> None:
    settings = Settings()
    settings.blueprints.max_limit = 3
    app = crowded_app(tmp_path, settings)
    async with app.lifted() as url, httpx.AsyncClient(base_url=url) as http:
        await fill(app, 5)
        assert len((await http.get("/user", params={"limit": "10"})).json()) == 3
        assert len((await http.get("/user")).json()) == 3  # default_limit (30) is lowered too
    settings = Settings()
    settings.blueprints.max_limit = 0
    with pytest.raises(ConfigError, match="max_limit must be at least 1"):
        settings.validate()
