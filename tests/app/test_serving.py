"""Serving: HTTP routes and sockets share one port; compression is off unless asked for; the demo works."""

from __future__ import annotations

import httpx
import orjson
import trio
from trio_websocket import open_websocket_url

from tests.support.raw import close_tcp, raw_websocket, ws_url
from trisails import App, Settings, SocketSettings
from trisails._cli import DEMO


async def test_http_routes_and_sockets_share_the_port() -> None:
    app = App()

    @app.http.route("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    app.io.on("connection", lambda socket: socket.emit("hi"))
    async with app.lifted() as url, httpx.AsyncClient() as http:
        response = await http.get(url + "/hello")
        assert response.json() == {"hello": "world"}
        # a kept-alive HTTP connection serves several requests through hypercorn
        assert (await http.get(url + "/hello")).status_code == 200
        assert (await http.get(url + "/nope")).status_code == 404
        async with raw_websocket(url) as ws:
            await ws.handshake()
            await ws.send("40")
            await ws.receive()
            await ws.expect('42["hi"]')


async def test_a_websocket_upgrade_on_a_kept_alive_connection_is_refused_and_the_client_keeps_polling() -> None:
    """hypercorn's writes cannot be cancelled, so it never serves a websocket (a client that stopped
    reading would pin it past every timeout): an upgrade sent as a later request of a kept-alive HTTP
    connection gets 400, as engine.io answers a failed upgrade, and the client goes on polling."""
    app = App()
    app.io.on("connection", lambda socket: socket.emit("hi"))
    async with app.lifted() as url:
        host, port = url.removeprefix("http://").split(":")
        stream = await trio.open_tcp_stream(host, int(port))
        async with stream:
            request = (
                f"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: {host}\r\n\r\n"
                f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            await stream.send_all(request.encode())
            data = b""
            with trio.fail_after(5):
                while b"open websockets on a new connection" not in data:
                    chunk = await stream.receive_some(4096)
                    assert chunk, data
                    data += chunk
            assert data.startswith(b"HTTP/1.1 200")
            assert b"HTTP/1.1 400" in data
            assert b"HTTP/1.1 101" not in data
        assert app.statistics()["sessions"] == 1  # the polling session is still there


async def test_permessage_deflate_is_declined_unless_the_app_turns_it_on() -> None:
    for compression in (False, True):
        app = App(Settings(sockets=SocketSettings(compression=compression)))
        async with app.lifted() as url:
            host, port = url.removeprefix("http://").split(":")
            stream = await trio.open_tcp_stream(host, int(port))
            async with stream:
                await stream.send_all(
                    f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}\r\n"
                    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n".encode()
                )
                head = b""
                with trio.fail_after(5):
                    while b"\r\n\r\n" not in head:
                        head += await stream.receive_some(4096)
            assert head.startswith(b"HTTP/1.1 101")
            assert (b"permessage-deflate" in head.lower()) is compression


async def test_the_demo_app_serves_a_live_chat() -> None:
    from tests.sails.test_virtual_requests import Requester, sails_socket

    app = App.load(DEMO)
    async with app.lifted() as url, httpx.AsyncClient() as http:
        page = await http.get(url + "/")
        assert page.status_code == 200 and "trisails is lifted" in page.text
        assert '<script src="/js/dependencies/sails.io.js">' in page.text
        client = await http.get(url + "/js/dependencies/sails.io.js")
        assert client.status_code == 200 and "io.sails" in client.text
        async with sails_socket(url) as alice, sails_socket(url) as bob:
            as_alice, as_bob = Requester(alice), Requester(bob)
            joined = await as_alice("post", "/chat/join", {"name": "alice", "visitor": "a1"})
            assert joined["body"] == {"you": "alice", "history": []}
            # the "here" list is presence: the whole room for the tab that joined, then diffs to the others
            (pushed,) = as_alice.pushed
            event, state = orjson.loads(pushed[2:])
            assert event == "presence_state" and state["room"] == "chat"
            assert [(key, [m["name"] for m in entry["metas"]]) for key, entry in state["state"].items()] == [("a1", ["alice"])]
            await as_bob("post", "/chat/join", {"name": "bob", "visitor": "b1"})
            frame = await alice.receive()
            assert isinstance(frame, str)
            event, diff = orjson.loads(frame[2:])
            assert event == "presence_diff" and diff["leaves"] == {}
            assert [(key, [m["name"] for m in entry["metas"]]) for key, entry in diff["joins"].items()] == [("b1", ["bob"])]
            status = await as_alice("get", "/chat/status")
            assert status["body"]["here"] == ["alice", "bob"]
            said = await as_bob("post", "/chat/say", {"text": "hello alice"})
            assert said["statusCode"] == 200
            frame = await alice.receive()
            assert isinstance(frame, str) and '"from":"bob","text":"hello alice"' in frame
        empty = await http.post(url + "/chat/say", json={"text": " "})
        assert empty.status_code == 400


async def test_lowering_the_app_tells_every_socket_it_is_going_away() -> None:
    app = App()
    async with trio.open_nursery() as nursery:
        url = await nursery.start(app.lift, "127.0.0.1", 0)
        async with open_websocket_url(ws_url(url)) as connection:
            try:
                await connection.get_message()  # the open packet
                app.lower()
                with trio.fail_after(5):
                    try:
                        while True:
                            await connection.get_message()
                    except Exception as closed:  # ConnectionClosed
                        assert closed.reason.code == 1001  # type: ignore[attr-defined]
            finally:
                await close_tcp(connection)
