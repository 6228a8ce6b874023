"""Edges found in review: what a reconnect repeats, a child that does not exist, text PostgreSQL cannot
store, a watcher that is in too many rooms. On SQLite and on PostgreSQL."""

from __future__ import annotations

import trio

from tests.models.apps import WAIT, Caller, Inbox, pets_app
from trisails import Settings
from trisails.client import connect


async def test_a_reconnecting_client_repeats_its_reads_but_never_its_writes(settings: Settings) -> None:
    app = pets_app(settings)
    async with app.lifted() as url, connect(url) as client:
        with trio.fail_after(WAIT):
            joe, _ = await client.post("/user", {"name": "joe"})
            _, jwr = await client.patch(f"/user/{joe['id']}", {"age": 41})
            assert "x-trisails-rejoin" not in jwr.headers
            rex, _ = await client.post("/pet", {"name": "rex"})
            _, jwr = await client.put(f"/user/{joe['id']}/pets/{rex['id']}")
            assert "x-trisails-rejoin" not in jwr.headers
            _, jwr = await client.get("/user")  # a read that subscribes: repeated to get the rooms back
            assert jwr.headers.get("x-trisails-rejoin") == "1"
            socket = app.io.sockets[client.id]
            reconnected = trio.Event()
            client.on("reconnect", lambda attempts: reconnected.set())
            socket._connection.session.close("network trouble", flush=False)  # the connection drops; the client comes back
            await reconnected.wait()
            assert client.connected and client.id != socket.id
            # the client repeats the read before anything sent after the reconnect, so it has run by now
            names = [u["name"] for u in (await client.get("/user"))[0]]
            assert names == ["joe"]  # one joe: the create was not sent again
            assert (await client.get("/pet"))[0][0]["owner"]["id"] == joe["id"]  # populated


async def test_adding_or_removing_a_record_that_does_not_exist_is_a_404(call: Caller) -> None:
    with trio.fail_after(WAIT):
        _, joe = await call("post", "/user", {"name": "joe"})
        assert await call("put", f"/user/{joe['id']}/pets/99") == (404, "Not Found")
        assert await call("delete", f"/user/{joe['id']}/pets/99") == (404, "Not Found")
        _, rex = await call("post", "/pet", {"name": "rex"})
        status, after = await call("delete", f"/user/{joe['id']}/pets/{rex['id']}")  # exists, not in it
        assert status == 200 and after["pets"] == []


async def test_text_with_a_nul_character_is_refused_on_every_database(call: Caller) -> None:
    with trio.fail_after(WAIT):
        status, body = await call("post", "/user", {"name": "jo\u0000e"})
        assert status == 400 and body["code"] == "E_INVALID_NEW_RECORD" and "NUL" in body["details"]
        status, body = await call("get", "/user", {"where": {"name": "jo\u0000e"}})
        assert status == 400 and body["code"] == "E_INVALID_CRITERIA"
        assert await call("get", "/user") == (200, [])


async def test_a_watcher_in_too_many_rooms_does_not_stop_anyone_creating(settings: Settings) -> None:
    settings.sockets.max_rooms_per_socket = 4
    async with pets_app(settings).lifted() as url:
        async with connect(url) as watcher, connect(url) as writer:
            with trio.fail_after(WAIT):
                heard = Inbox(watcher, "user")
                await watcher.get("/user")  # its id room, the user and pet class rooms: 3 of 4
                for name in ("ann", "bob", "cid"):
                    assert (await writer.post("/user", {"name": name}))[1].status_code == 200, name
                created = await heard.until(3)
                assert [m["data"]["name"] for _, m in created] == ["ann", "bob", "cid"]
                # only the first new record's room fitted; the others were logged and skipped
                assert (await writer.get("/user"))[0][-1]["name"] == "cid"
