"""One-way associations, as a Sails app declares them (``model: 'member'`` or ``collection: 'tag'`` with
nothing on the other side): trisails makes the other side Pony needs, and nobody sees it."""

from __future__ import annotations

import trio

from tests.models.apps import WAIT, Inbox, http_client
from trisails import App, Model, Optional, Required, Set, Settings
from trisails.client import connect


class Member(Model):
    name = Required(str)


class Tag(Model):
    label = Required(str)


class Card(Model):
    title = Required(str)
    assignee = Optional(Member)  # Sails' `assignee: {model: 'member'}`: Member says nothing of cards
    tags = Set(Tag)  # Sails' `tags: {collection: 'tag'}` with no `via`: many-to-many, one-way


def board(settings: Settings) -> App:
    app = App(settings)
    for model in (Member, Tag, Card):
        app.model(model)
    return app


async def test_a_card_points_at_a_member_who_knows_nothing_of_cards(settings: Settings) -> None:
    with trio.fail_after(WAIT):
        app = board(settings)
        async with app.lifted() as url, http_client(url) as http:
            ann = (await http.post("/member", json={"name": "ann"})).json()
            red, blue = [(await http.post("/tag", json={"label": c})).json() for c in ("red", "blue")]
            card = (await http.post("/card", json={"title": "fix it", "assignee": ann["id"], "tags": [red["id"]]})).json()
            assert card["assignee"]["name"] == "ann"
            assert [t["label"] for t in card["tags"]] == ["red"]

            # the member's side does not exist for the API: no attribute, no route, no filter
            member = (await http.get(f"/member/{ann['id']}")).json()
            assert set(member) == {"id", "createdAt", "updatedAt", "name"}
            assert set(app.models["member"].associations) == set()
            assert (await http.get(f"/member/{ann['id']}/_reverse_of_Card_assignee")).status_code == 404
            refused = await http.post("/member", json={"name": "bob", "_reverse_of_Card_assignee": [card["id"]]})
            assert refused.status_code == 400

            # the card's side works as any association: filters, add and remove, replace
            assert [c["id"] for c in (await http.get("/card", params={"where": f'{{"assignee": {ann["id"]}}}'})).json()] == [card["id"]]
            added = (await http.put(f"/card/{card['id']}/tags/{blue['id']}")).json()
            assert sorted(t["label"] for t in added["tags"]) == ["blue", "red"]
            other = (await http.post("/card", json={"title": "two", "tags": [red["id"]]})).json()  # many-to-many
            assert [t["label"] for t in other["tags"]] == ["red"]
            assert await Card.count({"assignee": ann["id"]}) == 1

            # the Model API sees the same: no hidden attribute on a member
            assert await Member.find_one(ann["id"]) == member
            destroyed = (await http.delete(f"/member/{ann['id']}")).json()
            assert set(destroyed) == set(member)
            assert (await http.get(f"/card/{card['id']}")).json()["assignee"] is None  # Optional: set to null


async def test_subscribers_of_the_member_hear_nothing_of_cards_the_cards_subscribers_do(settings: Settings) -> None:
    with trio.fail_after(WAIT):
        app = board(settings)
        async with app.lifted() as url, http_client(url) as http:
            ann = (await http.post("/member", json={"name": "ann"})).json()
            card = (await http.post("/card", json={"title": "fix it"})).json()
            async with connect(url) as watcher:
                inbox = Inbox(watcher, "member", "card")
                await watcher.get(f"/member/{ann['id']}")  # subscribes to ann
                await watcher.get(f"/card/{card['id']}")  # and to the card
                assert (await http.patch(f"/card/{card['id']}", json={"assignee": ann["id"]})).status_code == 200
                [(event, message)] = await inbox.until(1)
                assert (event, message["verb"], message["data"]["assignee"]) == ("card", "updated", ann["id"])
                await inbox.nothing_more_than(1)  # Sails says nothing to the member: it has no such attribute
