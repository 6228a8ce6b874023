"""A model closed by its policies stays closed when reached through another model's blueprints."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from tests.models.apps import Pet, User
from trisails import App, Request, Response, Settings
from trisails.client import connect


def vet_app(tmp_path: Path, settings: Settings | None = None) -> App:
    """Users are public; pets are nobody's business (``pet: {"*": False}``), except through the
    admin-only ``pet/find`` of a logged-in vet."""
    settings = settings or Settings()
    settings.datastores.url = f"sqlite:///{tmp_path}/db.sqlite"
    app = App(settings)
    app.model(User)
    app.model(Pet)

    @app.policy("is_vet")
    def is_vet(req: Request, res: Response) -> None:
        if req.headers.get("x-role") != "vet":
            res.status(401).json({"error": "vets only", "model": req.options.get("model")})

    app.set_policies({"pet": {"*": False, "find": "is_vet"}})
    return app


async def seed(http: httpx.AsyncClient, app: App) -> None:
    def insert() -> None:
        ann = app.models["user"].entity(name="ann")
        app.models["pet"].entity(name="rex", owner=ann)
        app.models["pet"].entity(name="tom")

    assert app.datastore is not None
    await app.datastore.run(insert)


async def test_closed_pets_cannot_be_read_or_changed_through_users(tmp_path: Path) -> None:
    """``pet: {"*": False}`` used to leave ``/user/1/pets``, ``?populate=pets``, ``PUT /user/1/pets/2``
    and a create with ``"pets": [1, 2]`` open: each read or changed pets. Now each is refused with the
    pet policies' answer, pets populated by default are left out, and users stay readable."""
    app = vet_app(tmp_path)
    async with app.lifted() as url, httpx.AsyncClient(base_url=url) as http:
        await seed(http, app)
        assert (await http.get("/pet")).status_code == 401  # the direct route, as before
        populate_route = await http.get("/user/1/pets")
        assert populate_route.status_code == 401
        assert populate_route.json() == {"error": "vets only", "model": "pet"}  # the policy saw the pet model
        assert (await http.get("/user", params={"populate": "pets"})).status_code == 401
        assert (await http.get("/user/1", params={"populate": "pets"})).status_code == 401
        users = (await http.get("/user")).json()
        assert [u["name"] for u in users] == ["ann"] and "pets" not in users[0]  # left out, not refused
        assert "pets" not in (await http.get("/user/1")).json()
        assert (await http.get("/pet/1/owner")).status_code == 403  # reading a user through a pet: pet/populate
        for attempt in (
            http.put("/user/1/pets/2"),
            http.delete("/user/1/pets/1"),
            http.put("/user/1/pets", json=[2]),
            http.post("/user", json={"name": "thief", "pets": [1, 2]}),
            http.patch("/user/1", json={"pets": [2]}),
        ):
            response = await attempt
            assert response.status_code == 403, (response.request.method, response.request.url, response.text)
        created = await http.post("/user", json={"name": "bob"})  # a user without pets is still fine
        assert created.status_code == 200 and "pets" not in created.json()
        vet = {"x-role": "vet"}
        assert [p["name"] for p in (await http.get("/user/1/pets", headers=vet)).json()] == ["rex"]
        assert [p["name"] for p in (await http.get("/user/1", headers=vet)).json()["pets"]] == ["rex"]
        assert (await http.get("/pet/2")).status_code == 403  # nothing changed hands
        assert (await http.get("/user/1/pets", headers=vet)).json()[0]["name"] == "rex"


async def test_a_socket_that_may_not_read_pets_does_not_hear_about_them(tmp_path: Path) -> None:
    """A socket finding users would also watch the pet model (and hear every new pet). It watches only
    what it may read."""
    app = vet_app(tmp_path)
    app.set_policies({"pet": {"*": False, "create": True, "find": "is_vet"}})
    async with app.lifted() as url, httpx.AsyncClient(base_url=url) as http:
        await seed(http, app)
        async with connect(url) as socket:
            heard: list[object] = []
            socket.on("pet", heard.append)
            socket.on("user", heard.append)
            body, jwr = await socket.get("/user")
            assert jwr.status_code == 200 and "pets" not in body[0]
            await http.post("/pet", json={"name": "new"})
            await http.post("/user", json={"name": "cy"})
            with trio.fail_after(5):
                while not heard:
                    await trio.sleep(0.01)
            assert [message["verb"] for message in heard] == ["created"]  # the user; no pet
            assert heard[0]["data"]["name"] == "cy"  # type: ignore[index]


async def test_sails_behaviour_is_one_setting_away(tmp_path: Path) -> None:
    settings = Settings()
    settings.blueprints.association_policies = False
    app = vet_app(tmp_path, settings)
    async with app.lifted() as url, httpx.AsyncClient(base_url=url) as http:
        await seed(http, app)
        assert (await http.get("/user/1/pets")).status_code == 200
        assert [p["name"] for p in (await http.get("/user/1")).json()["pets"]] == ["rex"]
