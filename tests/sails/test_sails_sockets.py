"""`sails.sockets`: rooms and messages in Sails' call forms, without Sails' broadcast bugs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
import trio

from tests.sails.test_virtual_requests import Requester, sails_socket
from tests.support.raw import RawWebSocket
from trisails import App, NoAppRunning, NoSuchSocket, Request, Response, Socket, sails


class Room:
    """Connected raw sockets and their server-side ids, in connection order."""

    def __init__(self, app: App, sockets: list[RawWebSocket], ids: list[str]) -> None:
        self.app = app
        self.ws = sockets
        self.ids = ids

    async def nothing_more(self, index: int) -> None:
        """Socket ``index`` has no frame waiting: its next one is the answer to a fresh request."""
        assert (await Requester(self.ws[index])("get", "/ping"))["body"] == "pong"


@asynccontextmanager
async def connected(count: int) -> AsyncIterator[Room]:
    app = App()
    app.route("GET /ping", lambda req, res: res.ok("pong"))
    all_connected = trio.Event()

    @app.io.on("connection")
    def counted(socket: Socket) -> None:
        if len(app.io.sockets) == count:
            all_connected.set()

    async with app.lifted() as url, AsyncExitStack() as stack:
        sockets = []
        for _ in range(count):
            sockets.append(await stack.enter_async_context(sails_socket(url)))
        with trio.fail_after(5):
            await all_connected.wait()
        # socket ids in connection order: each raw socket asks /ping and the server tells who asked
        ids = list(app.io.sockets)
        yield Room(app, sockets, ids)


async def test_a_socket_in_two_target_rooms_gets_the_broadcast_once() -> None:
    async with connected(2) as room:
        a, b = room.ids
        room.app.sockets.join(a, "red")
        room.app.sockets.join([a, b], "blue")
        assert room.app.sockets.broadcast(["red", "blue"], "news", {"n": 1}) == 2
        for ws in room.ws:
            await ws.expect('42["news",{"n":1}]')
            await room.nothing_more(room.ws.index(ws))


@pytest.mark.parametrize(
    "call",
    [
        lambda s, omit: s.broadcast("r", "hello", {"x": 1}, omit),
        lambda s, omit: s.broadcast("r", {"x": 1}, omit),  # Sails loses the omission here; we keep it
        lambda s, omit: s.broadcast("r", "hello", {"x": 1}, omit=omit),
    ],
    ids=["4 arguments", "3 arguments", "omit keyword"],
)
async def test_every_broadcast_form_keeps_its_omitted_socket(call) -> None:  # noqa: ANN001
    async with connected(2) as room:
        a, b = room.ids
        room.app.sockets.join([a, b], "r")
        assert call(room.app.sockets, room.app.io.sockets[a]) == 1
        frame = await room.ws[1].receive()
        assert frame in ('42["hello",{"x":1}]', '42["message",{"x":1}]')
        await room.nothing_more(0)


async def test_blast_reaches_everyone_and_keeps_its_omission_in_every_form() -> None:
    async with connected(3) as room:
        sockets = room.app.sockets
        assert sockets.blast({"all": 1}) == 3
        for ws in room.ws:
            await ws.expect('42["message",{"all":1}]')
        assert sockets.blast({"two": 1}, room.ids[0]) == 2  # Sails drops the omission in this form
        assert sockets.blast("evt", {"three": 1}, room.ids[1]) == 2
        await room.ws[1].expect('42["message",{"two":1}]')
        await room.ws[2].expect('42["message",{"two":1}]')
        await room.ws[0].expect('42["evt",{"three":1}]')
        await room.ws[2].expect('42["evt",{"three":1}]')


async def test_leave_all_empties_every_room_of_the_members_but_their_own() -> None:
    async with connected(2) as room:
        a, b = room.ids
        sockets = room.app.sockets
        sockets.join([a, b], "game")
        sockets.join(a, "chat")
        sockets.leave_all("game")
        assert sockets.rooms_of(a) == {a}
        assert sockets.rooms_of(b) == {b}
        sockets.join(a, "game")
        sockets.join(a, "chat")
        sockets.leave_all("game", include_source_room=False)
        assert sockets.rooms_of(a) == {a, "game"}


async def test_room_members_can_be_added_to_and_removed_from_other_rooms() -> None:
    async with connected(3) as room:
        a, b, c = room.ids
        sockets = room.app.sockets
        sockets.join([a, b], "team")
        sockets.add_room_members_to_rooms("team", ["red", "match"])
        assert sockets.members("red") == {a, b} and sockets.members("match") == {a, b}
        sockets.add_room_members_to_rooms(c, "red")  # a socket id is a room of one
        assert sockets.members("red") == {a, b, c}
        sockets.remove_room_members_from_rooms("team", "red")
        assert sockets.members("red") == {c}


async def test_sockets_are_named_by_request_socket_or_id_and_http_counts_as_none() -> None:
    app = App()
    seen: list[object] = []

    def who(req: Request, res: Response) -> None:
        seen.append(sails.sockets.get_id(req))
        sails.sockets.join(req, "nobody-from-http")  # a warning over HTTP, nothing joined
        res.ok()

    app.route("GET /who", who)
    async with app.lifted() as url, sails_socket(url) as ws:
        import httpx

        async with httpx.AsyncClient() as http:
            await http.get(url + "/who")
        await Requester(ws)("get", "/who")
        (socket,) = app.io.sockets.values()
        assert seen == [None, socket.id]
        assert app.sockets.get(socket.id) is socket
        assert app.sockets.get_id(socket) == socket.id
        assert app.sockets.members("nobody-from-http") == {socket.id}  # only the socket request joined
        with pytest.raises(NoSuchSocket):
            app.sockets.get("nope")


def test_sails_outside_a_lifted_app_says_what_to_do() -> None:
    with pytest.raises(NoAppRunning, match="inside a lifted app"):
        sails.sockets.blast({"x": 1})


def test_broadcast_refuses_a_call_it_cannot_read() -> None:
    app = App()
    with pytest.raises(TypeError, match="takes \\[event,\\] data"):
        app.sockets.broadcast("room")
    with pytest.raises(TypeError, match="event name must be a string"):
        app.sockets.broadcast("room", 1, 2, None)


async def test_broadcast_of_a_string_to_rooms_omitting_the_requester() -> None:
    app = App()

    def shout(req: Request, res: Response) -> None:
        sails.sockets.join(req, "r")
        sails.sockets.broadcast("r", "just text", req)  # Sails' (rooms, data, omit) form with string data
        res.ok()

    app.route("POST /shout", shout)
    app.route("POST /join", lambda req, res: (sails.sockets.join(req, "r"), res.ok())[1])
    async with app.lifted() as url, sails_socket(url) as listener, sails_socket(url) as shouter:
        await Requester(listener)("post", "/join")
        assert (await Requester(shouter)("post", "/shout"))["statusCode"] == 200
        await listener.expect('42["message","just text"]')


async def test_leaving_through_leave_all_marks_the_request_for_trisails_clients() -> None:
    app = App()
    app.route("POST /join", lambda req, res: (sails.sockets.join(req, "game"), res.ok())[1])
    app.route("POST /quit", lambda req, res: (sails.sockets.leave_all("game"), res.ok())[1])
    async with app.lifted() as url, sails_socket(url, __trisails_client="1") as ws:
        request = Requester(ws)
        await request("post", "/join")
        assert (await request("post", "/quit"))["headers"] == {"x-trisails-rejoin": "1"}


async def test_sails_is_the_app_only_while_it_is_lifted() -> None:
    app = App()
    async with app.lifted():
        assert sails.app is app
    with pytest.raises(NoAppRunning):
        sails.app


async def test_a_plain_def_action_can_start_app_and_socket_tasks() -> None:
    app = App()
    ran: list[str] = []
    both_ran = trio.Event()

    async def work(label: str) -> None:
        ran.append(label)
        if len(ran) == 2:
            both_ran.set()

    def start(req: Request, res: Response) -> None:  # runs in a worker thread
        app.start_soon(work, "app")
        req.socket.start_soon(work, "socket")  # type: ignore[union-attr]
        res.ok()

    app.route("POST /start", start)
    async with app.lifted() as url, sails_socket(url) as ws:
        assert (await Requester(ws)("post", "/start"))["statusCode"] == 200
        with trio.fail_after(5):
            await both_ran.wait()
    assert sorted(ran) == ["app", "socket"]
