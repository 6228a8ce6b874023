"""Bad input: whatever one client sends, only its own connection is closed, and everyone else carries on."""

from __future__ import annotations

import contextlib

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed

from tests.realtime.test_events import connect_v4
from tests.support.raw import RawWebSocket, message, raw_polling, raw_websocket
from trisails import App, Settings, Socket, SocketSettings


def echo_app(**sockets: object) -> App:
    app = App(Settings(sockets=SocketSettings(**sockets)))  # type: ignore[arg-type]

    @app.io.on("connection")
    def register(socket: Socket) -> None:
        socket.on("echo", lambda *args: args)

    return app


async def still_served(ws: RawWebSocket) -> None:
    """The bystander's request is answered as if nothing happened."""
    await ws.send('4277["echo","still here"]')
    await ws.expect('4377["still here"]')


MALFORMED_FRAMES = {
    "unknown Engine.IO type": "9",
    "unknown Socket.IO type": "49",
    "bad JSON": '42["echo",',
    "event that is not an array": '42{"a":1}',
    "event without a name": "42[]",
    "bad ack id": '42x1["echo"]',
    "attachment count that is not a number": '45x-["echo"]',
    "namespace without a comma": "42/custom",
    "namespace the client never connected": '42/custom,["echo",1]',
    "connect error from a client": '44{"message":"no"}',
    "binary frame nobody announced": b"\x01\x02",
    "heartbeat in the wrong direction": "2",
    "open packet from a client": "0{}",
}


@pytest.mark.parametrize("frame", MALFORMED_FRAMES.values(), ids=MALFORMED_FRAMES.keys())
async def test_a_malformed_frame_closes_only_the_connection_that_sent_it(
    frame: str | bytes, caplog: pytest.LogCaptureFixture
) -> None:
    app = echo_app()
    async with app.lifted() as url, raw_websocket(url) as bystander, raw_websocket(url) as offender:
        await connect_v4(bystander)
        await connect_v4(offender)
        await offender.send(frame)
        assert await offender.closed() == 1002
        await still_served(bystander)
    assert any("closing session" in r.getMessage() for r in caplog.records), "the reason is logged"


async def test_a_message_over_max_payload_closes_the_websocket_with_1009() -> None:
    app = echo_app(max_payload=1000)
    async with app.lifted() as url, raw_websocket(url) as bystander, raw_websocket(url) as offender:
        await connect_v4(bystander)
        await connect_v4(offender)
        await offender.send('42["echo","' + "x" * 2000 + '"]')
        assert await offender.closed() == 1009
        await still_served(bystander)


async def test_too_many_events_waiting_for_a_slow_handler_close_the_flooder() -> None:
    app = App(Settings(sockets=SocketSettings(inbound_buffer=4)))
    release = trio.Event()

    @app.io.on("connection")
    def register(socket: Socket) -> None:
        async def slow() -> None:
            await release.wait()

        socket.on("slow", slow)
        socket.on("echo", lambda *args: args)

    async with app.lifted() as url, raw_websocket(url) as bystander, raw_websocket(url) as flooder:
        await connect_v4(bystander)
        await connect_v4(flooder)
        with contextlib.suppress(ConnectionClosed):  # the server may hang up before the last one
            for _ in range(10):
                await flooder.send('42["slow"]')
        assert await flooder.closed() == 1002
        await still_served(bystander)
        release.set()


async def test_garbage_polling_bodies_and_requests_get_errors_and_break_nothing() -> None:
    app = echo_app()
    async with app.lifted() as url, raw_websocket(url) as bystander, httpx.AsyncClient() as http:
        await connect_v4(bystander)
        async with raw_polling(url, eio_revision=3) as polling:
            await polling.open()
            response = await polling.client.post(polling.url(), content=b"12:not a payload")
            assert response.status_code == 200  # accepted as a request, but the session is closed for it
            response = await polling.client.post(polling.url(), content=b"1:2")
            assert response.json() == {"code": 1, "message": "Session ID unknown"}
        for query in ("EIO=3&transport=polling&sid=nope", "EIO=9&transport=polling", "EIO=4&transport=ftp"):
            response = await http.get(f"{url}/socket.io/?{query}")
            assert response.status_code == 400
        response = await http.put(f"{url}/socket.io/?EIO=4&transport=polling")
        assert response.json() == {"code": 2, "message": "Bad handshake method"}
        await still_served(bystander)


async def test_a_broken_upgrade_request_gets_400_and_breaks_nothing() -> None:
    app = echo_app()
    async with app.lifted() as url, raw_websocket(url) as bystander:
        await connect_v4(bystander)
        host, port = url.removeprefix("http://").split(":")
        stream = await trio.open_tcp_stream(host, int(port))
        async with stream:
            await stream.send_all(
                b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n"
                b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"  # no key, no version
            )
            response = b""
            with trio.fail_after(5):
                while b"\r\n\r\n" not in response:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        break
                    response += chunk
            assert response.startswith(b"HTTP/1.1 400")
        await still_served(bystander)


async def test_a_handler_or_middleware_that_crashes_never_takes_the_server_down() -> None:
    app = App()

    @app.io.use
    def explode_sometimes(socket: Socket) -> None:
        if socket.handshake.auth.get("explode"):
            raise RuntimeError("middleware bug")

    @app.io.on("connection")
    def register(socket: Socket) -> None:
        socket.on("echo", lambda *args: args)

    async with app.lifted() as url, raw_websocket(url) as bystander, raw_websocket(url) as victim:
        await connect_v4(bystander)
        await victim.handshake()
        await victim.send('40{"explode":true}')
        await victim.expect('44{"message":"Internal server error"}')
        await still_served(bystander)


async def test_polling_post_with_an_oversize_binary_payload_is_refused() -> None:
    app = echo_app(max_payload=100)
    async with app.lifted() as url, raw_polling(url, eio_revision=4) as polling:
        await polling.open()
        response = await polling.post(message(b"\x00" * 500))
        assert response.status_code == 413
