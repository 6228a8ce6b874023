"""Behaviours the Socket.IO reference server (socket.io 4.8.1) shows and conformance suites check, byte
for byte, against ``examples/socketio_reference``."""

from __future__ import annotations

import trio
import trio.testing

from tests.support.apps import reference_app
from tests.support.memory import MemoryPolling
from tests.support.raw import message, raw_polling, raw_websocket
from trisails.protocol import engineio as eio
from trisails.protocol import websocket as rfc6455
from trisails.testing import MemoryResponse, serve_in_memory

UNKNOWN_SID = b'{"code":1,"message":"Session ID unknown"}'
BAD_REQUEST = b'{"code":3,"message":"Bad request"}'


async def test_a_namespace_may_end_the_packet_without_a_trailing_comma(reference_url: str) -> None:
    """socket.io-parser reads a namespace up to the first ',' or the end: ``40/random`` is an unknown
    namespace (not a broken packet), and ``41/custom`` leaves ``/custom`` while the session goes on."""
    async with raw_websocket(reference_url) as ws:
        await ws.handshake()
        await ws.send("40/random")
        await ws.expect('44/random,{"message":"Invalid namespace"}')
        await ws.send("40/custom")
        connected = await ws.receive()
        assert isinstance(connected, str) and connected.startswith('40/custom,{"sid":')
        await ws.expect('42/custom,["auth",{}]')
        await ws.send("41/custom")
        await ws.send("40")  # the session is still there: "/" connects on it
        connected = await ws.receive()
        assert isinstance(connected, str) and connected.startswith('40{"sid":')


async def test_a_close_packet_releases_the_pending_poll_with_a_noop_and_ends_the_session(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serve_in_memory(reference_app()) as server:
        polling = MemoryPolling(server)
        await polling.open()
        await polling.post(message("0"))
        assert (await polling.get())[0].data.startswith('0{"sid":')  # type: ignore[union-attr]
        async with trio.open_nursery() as nursery:
            answers: list[MemoryResponse] = []

            async def pending_get() -> None:
                answers.append(await polling.get_response())

            nursery.start_soon(pending_get)
            await trio.testing.wait_all_tasks_blocked()  # the GET is pending at the server
            await polling.post(eio.Packet(eio.PacketType.CLOSE))
        assert (answers[0].status, answers[0].body) == (200, b"6")
        after = await polling.get_response()
        assert (after.status, after.body) == (400, UNKNOWN_SID)


async def test_after_an_upgrade_polling_is_refused_and_a_second_websocket_is_closed(reference_url: str) -> None:
    async with raw_polling(reference_url) as polling:
        await polling.open()
        assert polling.sid is not None
        async with raw_websocket(reference_url, sid=polling.sid) as ws:
            await ws.send("2probe")
            await ws.expect("3probe")
            await ws.send("5")
            await ws.send("40")
            connected = await ws.receive()
            assert isinstance(connected, str) and connected.startswith('40{"sid":')
            after = await polling.client.get(polling.url(), timeout=5)
            assert (after.status_code, after.content) == (400, BAD_REQUEST)
            # a second websocket for the same session is accepted, then closed at once
            async with raw_websocket(reference_url, sid=polling.sid) as second:
                assert await second.closed() is not None


async def test_every_request_header_reaches_the_socket_handshake() -> None:
    """wsproto dropped ``sec-websocket-extensions`` and ``sec-websocket-protocol`` from what it handed
    on; a Socket.IO server sees every header the client sent."""
    from trisails import App

    app = App()
    seen: list[dict[str, str]] = []
    app.io.on("connection", lambda socket: seen.append(socket.handshake.headers))
    async with app.lifted() as url:
        host, port = url.removeprefix("http://").split(":")
        stream = await trio.open_tcp_stream(host, int(port))
        async with stream:
            await stream.send_all(
                f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                "Sec-WebSocket-Protocol: chat\r\nX-Custom: 1\r\n\r\n".encode()
            )
            data = b""
            with trio.fail_after(5):
                while b"\r\n\r\n" not in data:
                    data += await stream.receive_some(4096)
                connect = b"\x81\x82abcd" + bytes(c ^ k for c, k in zip(b"40", b"abcd"))
                await stream.send_all(connect)
                while not seen:
                    data += await stream.receive_some(4096)
    headers = seen[0]
    assert headers["sec-websocket-extensions"] == "permessage-deflate; client_max_window_bits"
    assert headers["sec-websocket-protocol"] == "chat"
    assert headers["x-custom"] == "1"
    assert headers["sec-websocket-key"] == "dGhlIHNhbXBsZSBub25jZQ=="
    assert rfc6455.accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") in data
