"""Binary attachments cannot pile up (issue 16, item 3).

A Socket.IO packet announces how many binary attachments follow it, and the server holds them until
the last one arrives. Before, a packet could announce 100 attachments of up to ``max_payload`` bytes
each, all buffered: three connections took a server from 176 to 459 MB. Now a packet and all its
attachments together are bounded by ``max_payload``, and the count by ``sockets.max_attachments``
(10, as socket.io); past either the connection is closed as a protocol error.
"""

from __future__ import annotations

import logging

import pytest
import trio
from trio_websocket import ConnectionClosed

from trisails import App
from trisails._errors import SocketIOError
from trisails.protocol import socketio as sio
from tests.support.raw import raw_websocket

MB = 1_000_000
#: The largest attachment one websocket message may carry under the default ``max_payload``.
ATTACHMENT = b"\x00" * (MB - 1000)


def upload_app(**sockets: object) -> tuple[App, list[int]]:
    """An app whose ``upload`` event records the size of every upload that reaches it."""
    app = App()
    for name, value in sockets.items():
        setattr(app.settings.sockets, name, value)
    received: list[int] = []

    @app.io.on("connection")
    def on_connection(socket) -> None:  # type: ignore[no-untyped-def]
        socket.on("upload", lambda *files: received.append(sum(len(f) for f in files)))

    return app, received


def header(count: int) -> str:
    """A BINARY_EVENT ``upload`` announcing ``count`` attachments, as one Engine.IO message."""
    placeholders = ",".join(f'{{"_placeholder":true,"num":{i}}}' for i in range(count))
    return f'45{count}-["upload",{placeholders}]'


async def send_until_closed(ws, count: int) -> tuple[int, int | None]:  # type: ignore[no-untyped-def]
    """Send up to ``count`` attachments; return how many were sent and the close code, if closed."""
    sent = 0
    try:
        for _ in range(count):
            await ws.send(ATTACHMENT)
            sent += 1
    except ConnectionClosed as closed:
        return sent, closed.reason.code
    return sent, None


async def test_a_packet_announcing_100_attachments_of_1_mb_is_refused_at_its_header(caplog: pytest.LogCaptureFixture) -> None:
    """With the defaults, the announcement alone closes the connection: nothing is buffered."""
    app, received = upload_app()
    caplog.set_level(logging.INFO, logger="trisails.realtime")
    with trio.fail_after(30):
        async with app.lifted() as url, raw_websocket(url) as ws:
            await ws.handshake()
            await ws.send("40")
            await ws.receive()  # the CONNECT answer
            await ws.send(header(100))
            assert await ws.closed() == 1002
    assert received == []
    assert "at most 10 attachments" in caplog.text


async def test_attachments_together_are_bounded_by_max_payload(caplog: pytest.LogCaptureFixture) -> None:
    """An app that allows 100 attachments still holds at most ``max_payload`` bytes for one packet:
    the attachment that would take the packet past it closes the connection, so 100 attachments of
    1 MB never cost more than 1 MB."""
    app, received = upload_app(max_attachments=100)
    caplog.set_level(logging.INFO, logger="trisails.realtime")
    with trio.fail_after(30):
        async with app.lifted() as url, raw_websocket(url) as ws:
            await ws.handshake()
            await ws.send("40")
            await ws.receive()
            await ws.send(header(100))
            sent, code = await send_until_closed(ws, 100)
            if code is None:
                code = await ws.closed()
            assert code == 1002
            assert sent < 100
            assert not app._engine.sessions  # the connection, and whatever it held, is gone
    assert received == []
    assert "max_payload" in caplog.text


async def test_small_attachments_within_the_bounds_still_arrive() -> None:
    """The bounds leave honest binary alone: three attachments of 100 KB reach the handler."""
    app, received = upload_app()
    with trio.fail_after(30):
        async with app.lifted() as url, raw_websocket(url) as ws:
            await ws.handshake()
            await ws.send("40")
            await ws.receive()
            await ws.send(header(3))
            for _ in range(3):
                await ws.send(b"\x01" * 100_000)
            with trio.fail_after(5):
                while not received:
                    await trio.sleep(0.01)
    assert received == [300_000]


def test_the_decoder_never_holds_more_than_max_payload() -> None:
    """The sans-I/O decoder alone: a packet announcing 100 attachments of 1 MB is refused at the
    second, and what it holds never passes ``max_payload``."""
    decoder = sio.Decoder(max_attachments=100, max_payload=MB)
    decoder.receive(header(100)[1:])
    attachment = b"\x00" * (MB // 2)
    decoder.receive(attachment)
    assert 0 < decoder.buffered <= MB
    with pytest.raises(SocketIOError, match="max_payload"):
        decoder.receive(attachment)
    assert decoder.buffered == 0 and decoder.awaiting_attachments == 0
