"""Resourceful pub-sub (spec 4.1–4.4): who hears what when records change, byte for byte as Sails sends it.

Socket A reads, socket B writes. A hears every change B makes, in the shapes of spec 4.3 with their key
order; B never hears its own (unless ``blueprints.mirror``); changes made over HTTP reach everyone
subscribed. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import trio

from tests.models.apps import WAIT, Inbox, Pet, User, assert_wire, http_client, pets_app, rooms
from trisails import App, Model, Request, Required, Response, Set, Settings
from trisails.client import connect

EVENTS = ("user", "pet")


def updated(data: dict[str, Any], id: int, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """An ``updated`` message; a reverse-association one has no ``previous``."""
    message: dict[str, Any] = {"verb": "updated", "data": data, "id": id}
    if previous is not None:
        message["previous"] = previous
    return message


def added(id: int, attribute: str, added_id: int) -> dict[str, Any]:
    return {"id": id, "verb": "addedTo", "attribute": attribute, "addedId": added_id}


def removed(id: int, attribute: str, removed_id: int) -> dict[str, Any]:
    return {"id": id, "verb": "removedFrom", "attribute": attribute, "removedId": removed_id}


# ------------------------------------------------------------------------------------------------ the spec's story
async def test_a_socket_hears_every_change_another_socket_makes(settings: Settings) -> None:
    with trio.fail_after(WAIT):
        async with pets_app(settings).lifted() as url, connect(url) as a, connect(url) as b:
            heard, b_heard = Inbox(a, *EVENTS), Inbox(b, *EVENTS)
            assert (await a.get("/user"))[0] == []  # watches User
            assert (await a.get("/pet"))[0] == []  # watches Pet
            joe, _ = await b.post("/user", {"name": "joe"})
            joey, _ = await b.patch("/user/1", {"name": "joey"})
            rex, _ = await b.post("/pet", {"name": "rex"})
            await b.put("/user/1/pets/1")
            without_rex, _ = await b.delete("/user/1/pets/1")
            gone, _ = await b.delete("/user/1")
            expected = [
                ("user", {"verb": "created", "data": joe, "id": 1}),
                ("user", updated({"name": "joey", "id": 1, "updatedAt": joey["updatedAt"]}, 1, previous=joe)),
                ("pet", {"verb": "created", "data": rex, "id": 1}),
                ("user", added(1, "pets", 1)),
                ("pet", updated({"owner": 1}, 1)),
                ("user", removed(1, "pets", 1)),
                ("pet", updated({"owner": None}, 1)),
                ("user", {"verb": "destroyed", "id": 1, "previous": without_rex}),
            ]
            assert_wire(await heard.until(len(expected)), expected)
            assert gone == without_rex
            await heard.nothing_more_than(len(expected))
            await b_heard.nothing_more_than(0)  # never its own changes


async def test_mirror_sends_a_socket_its_own_changes_too(settings: Settings) -> None:
    settings.blueprints.mirror = True
    with trio.fail_after(WAIT):
        async with pets_app(settings).lifted() as url, connect(url) as b:
            heard = Inbox(b, *EVENTS)
            await b.get("/user")
            joe, _ = await b.post("/user", {"name": "joe"})
            await b.delete("/user/1")
            assert_wire(
                await heard.until(2),
                [
                    ("user", {"verb": "created", "data": joe, "id": 1}),
                    ("user", {"verb": "destroyed", "id": 1, "previous": joe}),
                ],
            )


async def test_changes_made_over_http_reach_every_subscriber(settings: Settings) -> None:
    with trio.fail_after(WAIT):
        async with pets_app(settings).lifted() as url, connect(url) as a, connect(url) as b:
            inboxes = [Inbox(a, *EVENTS), Inbox(b, *EVENTS)]
            await a.get("/user")
            await b.get("/user")
            async with http_client(url) as http:
                ann = (await http.post("/user", json={"name": "ann"})).json()
                older = (await http.patch("/user/1", json={"age": 30})).json()
                await http.delete("/user/1")
            expected = [
                ("user", {"verb": "created", "data": ann, "id": 1}),
                ("user", updated({"age": 30, "id": 1, "updatedAt": older["updatedAt"]}, 1, previous=ann)),
                ("user", {"verb": "destroyed", "id": 1, "previous": older}),
            ]
            for inbox in inboxes:
                assert_wire(await inbox.until(3), expected)
                await inbox.nothing_more_than(3)


# ------------------------------------------------------------------------------------------------ who is subscribed
async def test_a_socket_hears_only_about_the_records_it_found(settings: Settings) -> None:
    with trio.fail_after(WAIT):
        async with pets_app(settings).lifted() as url, connect(url) as a, connect(url) as b:
            await User.create({"name": "ann"})
            await User.create({"name": "bob"})
            heard = Inbox(a, *EVENTS)
            assert [u["name"] for u in (await a.get("/user", {"name": "ann"}))[0]] == ["ann"]
            await b.patch("/user/2", {"age": 5})  # bob: A never found him
            ann, _ = await b.patch("/user/1", {"age": 6})
            ((event, message),) = await heard.until(1)
            assert event == "user" and message["id"] == 1
            assert message["data"] == {"age": 6, "id": 1, "updatedAt": ann["updatedAt"]}
            await heard.nothing_more_than(1)


async def test_find_one_subscribes_to_the_record_and_what_it_holds(settings: Settings) -> None:
    app = pets_app(settings)
    with trio.fail_after(WAIT):
        async with app.lifted() as url, connect(url) as a, connect(url) as b:
            await User.create({"name": "ann"})
            await Pet.create({"name": "rex", "owner": 1})
            await a.get("/user/1")
            assert rooms(app, a) == {
                a.id,
                "sails_model_user_1:user",  # the record
                "sails_model_pet_1:pet",  # the record it holds
                "sails_model_create_pet",  # the associated model (Sails' subscribeDeep, autoWatch on)
            }
            heard = Inbox(a, *EVENTS)
            before = await Pet.find_one(1, populate=True)
            rex, _ = await b.patch("/pet/1", {"name": "rex II"})
            tom, _ = await b.post("/pet", {"name": "tom"})
            await b.post("/user", {"name": "bob"})  # A does not watch User: it never listed users
            expected = [
                ("pet", updated({"name": "rex II", "id": 1, "updatedAt": rex["updatedAt"]}, 1, previous=before)),
                ("pet", {"verb": "created", "data": tom, "id": 2}),
            ]
            assert_wire(await heard.until(2), expected)
            await heard.nothing_more_than(2)


async def test_listing_no_records_watches_only_the_model_listed(settings: Settings) -> None:
    app = pets_app(settings)
    with trio.fail_after(WAIT):
        async with app.lifted() as url, connect(url) as a:
            await a.get("/user")
            # as in Sails, associated models are watched once per record found (subscribeDeep)
            assert rooms(app, a) == {a.id, "sails_model_create_user"}
            await User.create({"name": "ann"})
            await a.get("/user")
            assert "sails_model_create_pet" in rooms(app, a)


async def test_auto_watch_off_subscribes_to_records_but_not_to_new_ones(settings: Settings) -> None:
    settings.blueprints.auto_watch = False
    app = pets_app(settings)
    with trio.fail_after(WAIT):
        async with app.lifted() as url, connect(url) as a, connect(url) as b:
            await User.create({"name": "ann"})
            heard = Inbox(a, *EVENTS)
            await a.get("/user")
            assert rooms(app, a) == {a.id, "sails_model_user_1:user"}
            await b.post("/user", {"name": "bob"})
            await b.patch("/user/1", {"age": 1})
            ((_, message),) = await heard.until(1)
            assert message["verb"] == "updated" and message["id"] == 1
            await heard.nothing_more_than(1)


# ------------------------------------------------------------------------------------------------ associations
async def test_a_pet_created_with_an_owner_tells_the_owner(settings: Settings) -> None:
    with trio.fail_after(WAIT):
        async with pets_app(settings).lifted() as url, connect(url) as a, connect(url) as b:
            await User.create({"name": "ann"})
            heard = Inbox(a, *EVENTS)
            await a.get("/user")  # subscribed to ann; watching User, and Pet through ann's pets
            rex, _ = await b.post("/pet", {"name": "rex", "owner": 1})
            assert rex["owner"]["name"] == "ann"  # populated in the answer and in "created"
            expected = [
                ("user", added(1, "pets", 1)),  # Sails tells the other sides first
                ("pet", {"verb": "created", "data": rex, "id": 1}),
            ]
            assert_wire(await heard.until(2), expected)
            await heard.nothing_more_than(2)


async def test_a_user_created_with_pets_tells_each_pet(settings: Settings) -> None:
    with trio.fail_after(WAIT):
        async with pets_app(settings).lifted() as url, connect(url) as a, connect(url) as b:
            await Pet.create({"name": "rex"})
            await Pet.create({"name": "tom"})
            heard = Inbox(a, *EVENTS)
            await a.get("/pet")  # subscribed to both pets; watching Pet, and User through their owner
            joe, _ = await b.post("/user", {"name": "joe", "pets": [1, 2]})
            expected = [
                ("pet", updated({"owner": 1}, 1)),
                ("pet", updated({"owner": 1}, 2)),
                ("user", {"verb": "created", "data": joe, "id": 1}),
            ]
            assert_wire(await heard.until(3), expected)
            await heard.nothing_more_than(3)


async def test_a_pet_taken_by_another_owner_is_removed_from_the_first(settings: Settings) -> None:
    with trio.fail_after(WAIT):
        async with pets_app(settings).lifted() as url, connect(url) as a, connect(url) as b:
            await User.create({"name": "ann"})
            await User.create({"name": "bob"})
            await Pet.create({"name": "rex", "owner": 1})
            heard, b_heard = Inbox(a, *EVENTS), Inbox(b, *EVENTS)
            await a.get("/user")  # subscribed to ann, bob and rex
            await b.get("/user")
            await b.put("/user/2/pets/1")  # bob takes rex, through bob's collection
            expected = [
                ("user", added(2, "pets", 1)),
                ("pet", updated({"owner": 2}, 1)),
                ("user", removed(1, "pets", 1)),  # ann's room hears she lost rex
            ]
            assert_wire(await heard.until(3), expected)
            before, _ = await b.get("/pet/1")
            rex, _ = await b.patch("/pet/1", {"owner": 1})  # and ann takes rex back, through rex's owner
            expected += [
                ("user", removed(2, "pets", 1)),  # Sails tells the other sides first, the loser first
                ("user", added(1, "pets", 1)),
                ("pet", updated({"owner": 1, "id": 1, "updatedAt": rex["updatedAt"]}, 1, previous=before)),
            ]
            assert_wire(await heard.until(6), expected)
            await heard.nothing_more_than(6)
            await b_heard.nothing_more_than(0)


async def test_replacing_a_collection_reports_each_record_gained_and_lost(settings: Settings) -> None:
    with trio.fail_after(WAIT):
        async with pets_app(settings).lifted() as url, connect(url) as a, connect(url) as b:
            await User.create({"name": "ann", "pets": []})
            for name in ("rex", "tom", "fido"):
                await Pet.create({"name": name})
            await User.add_to(1, "pets", [1, 2])
            heard = Inbox(a, *EVENTS)
            await a.get("/user")
            await a.get("/pet")
            await b.put("/user/1/pets", [2, 3])
            expected = [
                ("user", added(1, "pets", 3)),
                ("user", removed(1, "pets", 1)),
                ("pet", updated({"owner": None}, 1)),
                ("pet", updated({"owner": 1}, 3)),
            ]
            messages = await heard.until(4)
            assert sorted(map(repr, messages)) == sorted(map(repr, expected))  # every one, in some order
            await heard.nothing_more_than(4)


async def test_destroying_a_record_frees_what_it_held(settings: Settings) -> None:
    with trio.fail_after(WAIT):
        async with pets_app(settings).lifted() as url, connect(url) as a, connect(url) as b:
            await User.create({"name": "ann"})
            await User.create({"name": "bob"})
            await Pet.create({"name": "rex", "owner": 1})
            await Pet.create({"name": "tom", "owner": 2})
            heard = Inbox(a, *EVENTS)
            await a.get("/user")
            ann, _ = await b.delete("/user/1")
            tom, _ = await b.delete("/pet/2")
            expected = [
                ("user", {"verb": "destroyed", "id": 1, "previous": ann}),
                ("pet", updated({"owner": None}, 1)),  # rex has no owner any more
                ("pet", {"verb": "destroyed", "id": 2, "previous": tom}),
                ("user", removed(2, "pets", 2)),  # bob lost tom
            ]
            assert_wire(await heard.until(4), expected)
            await heard.nothing_more_than(4)
            assert (await b.get("/pet/1"))[0]["owner"] is None


class Post(Model):
    title = Required(str)
    tags = Set("Tag")


class Tag(Model):
    label = Required(str)
    posts = Set(Post)


async def test_many_to_many_changes_are_heard_on_both_sides(settings: Settings) -> None:
    app = App(settings)
    app.model(Post)
    app.model(Tag)
    with trio.fail_after(WAIT):
        async with app.lifted() as url, connect(url) as a, connect(url) as b:
            await Post.create({"title": "hello"})
            await Tag.create({"label": "news"})
            heard = Inbox(a, "post", "tag")
            await a.get("/post")
            await a.get("/tag")
            await b.put("/post/1/tags/1")
            await b.delete("/post/1/tags/1")
            expected = [
                ("post", added(1, "tags", 1)),
                ("tag", added(1, "posts", 1)),
                ("post", removed(1, "tags", 1)),
                ("tag", removed(1, "posts", 1)),
            ]
            assert_wire(await heard.until(4), expected)
            await heard.nothing_more_than(4)


# ------------------------------------------------------------------------------------------------ the Model API
def follow_app(settings: Settings) -> App:
    """An app whose actions use the model's pub-sub methods directly."""
    app = pets_app(settings)

    def follow(req: Request, res: Response) -> None:
        ids = [int(i) for i in str(req.param("ids")).split(",")]
        User.subscribe(req, ids)
        res.json({"rooms": [User.get_room_name(i) for i in ids]})

    def unfollow(req: Request, res: Response) -> None:
        User.unsubscribe(req, [int(i) for i in str(req.param("ids")).split(",")])
        res.ok()

    def announce(req: Request, res: Response) -> None:
        res.json({"sent": User.publish(req.param("ids"), req.param("data"), req)})

    app.route("POST /follow", follow)
    app.route("POST /unfollow", unfollow)
    app.route("POST /announce", announce)
    return app


async def test_an_action_subscribes_and_publishes_with_the_models_methods(settings: Settings) -> None:
    app = follow_app(settings)
    with trio.fail_after(WAIT):
        async with app.lifted() as url, connect(url) as a, connect(url) as b:
            heard, b_heard = Inbox(a, "user"), Inbox(b, "user")
            followed, _ = await a.post("/follow", {"ids": "7,8"})
            assert followed == {"rooms": ["sails_model_user_7:user", "sails_model_user_8:user"]}
            assert User.get_room_name(7) == "sails_model_user_7:user"
            assert {"sails_model_user_7:user", "sails_model_user_8:user"} <= rooms(app, a)
            await b.post("/follow", {"ids": "7"})
            sent, _ = await b.post("/announce", {"ids": [7, 8], "data": {"verb": "published", "x": 1}})
            assert sent == {"sent": 1}  # A, once, though it follows both; B made it, so B is left out
            assert_wire(await heard.until(1), [("user", {"verb": "published", "x": 1})])  # data as it is
            await heard.nothing_more_than(1)
            assert User.publish([7], {"from": "the server"}) == 2  # no request: nobody is left out
            await b_heard.until(1)
            await a.post("/unfollow", {"ids": "7,8"})
            await b.post("/announce", {"ids": [7, 8], "data": {"x": 2}})
            await heard.nothing_more_than(2)
            assert heard.heard[1] == ("user", {"from": "the server"})


async def test_the_class_room_and_subscribing_over_http(settings: Settings) -> None:
    app = follow_app(settings)
    with trio.fail_after(WAIT):
        async with app.lifted() as url, connect(url) as a, http_client(url) as http:
            await a.get("/user")
            assert "sails_model_create_user" in rooms(app, a)
            response = await http.post("/follow", json={"ids": "1"})  # an HTTP request has no socket to subscribe
            assert response.status_code == 200
            assert app.sockets.members("sails_model_user_1:user") == set()


async def test_destroying_a_record_empties_its_room(settings: Settings) -> None:
    app = follow_app(settings)
    with trio.fail_after(WAIT):
        async with app.lifted() as url, connect(url) as a, connect(url) as b, connect(url) as c:
            await User.create({"name": "ann"})
            await a.get("/user")  # subscribed by finding it
            await c.post("/follow", {"ids": "1"})  # subscribed by an action
            room = User.get_room_name(1)
            assert app.sockets.members(room) == {a.id, c.id}
            heard = [Inbox(a, "user"), Inbox(c, "user")]
            await b.delete("/user/1")
            for inbox in heard:
                ((_, message),) = await inbox.until(1)
                assert message["verb"] == "destroyed"
            assert app.sockets.members(room) == set()
            assert "sails_model_create_user" in rooms(app, a)  # a still hears new users
