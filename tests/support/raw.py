"""Raw Engine.IO clients for transcript tests: the frames a test sends and expects, nothing hidden.

``RawWebSocket`` speaks websocket frames with trio-websocket; ``RawPolling`` speaks long-polling with
httpx. Both wait with a bound, so a missing frame fails the test with a clear message instead of
hanging it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from trisails.protocol import engineio as eio

WAIT = 5.0


def ws_url(base: str, *, eio_revision: int = 4, transport: str = "websocket", **query: str) -> str:
    params = "&".join([*(f"{k}={v}" for k, v in query.items()), f"EIO={eio_revision}", f"transport={transport}"])
    return base.replace("http://", "ws://") + "/socket.io/?" + params


class RawWebSocket:
    """A websocket client that exposes Engine.IO frames as strings and bytes."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws

    async def send(self, frame: str | bytes) -> None:
        await self.ws.send_message(frame)

    async def receive(self, timeout: float = WAIT) -> str | bytes:
        with trio.fail_after(timeout):
            return await self.ws.get_message()

    async def expect(self, expected: str | bytes, timeout: float = WAIT) -> None:
        frame = await self.receive(timeout)
        assert frame == expected, f"expected frame {expected!r}, got {frame!r}"

    async def handshake(self) -> dict[str, Any]:
        """Receive the OPEN packet and return its JSON."""
        frame = await self.receive()
        assert isinstance(frame, str) and frame.startswith("0"), f"expected an open packet, got {frame!r}"
        return orjson.loads(frame[1:])

    async def closed(self, timeout: float = WAIT) -> int | None:
        """Wait until the server closes the connection (skipping frames); return the close code."""
        with trio.fail_after(timeout):
            try:
                while True:
                    await self.ws.get_message()
            except ConnectionClosed as closed:
                return closed.reason.code


@asynccontextmanager
async def raw_websocket(base: str, *, eio_revision: int = 4, **query: str) -> AsyncIterator[RawWebSocket]:
    async with open_websocket_url(ws_url(base, eio_revision=eio_revision, **query), message_queue_size=1) as ws:
        try:
            yield RawWebSocket(ws)
        finally:
            await close_tcp(ws)


async def close_tcp(ws: WebSocketConnection) -> None:
    """Close the TCP stream under ``ws``.

    trio-websocket 0.12.2 leaves a client's stream open (a ResourceWarning at garbage collection) when
    the *server* closes the websocket, because its reader stops at the TCP EOF without closing.
    """
    await ws._stream.aclose()


@asynccontextmanager
async def never_reading_client(base: str) -> AsyncIterator[None]:
    """A v4 websocket client that connects to ``/`` and then never reads another byte.

    It speaks just enough websocket (via wsproto) to complete the upgrade and send ``40``; after that
    the server's writes pile up in the kernel buffers, as with a stuck or hostile peer.
    """
    host, port = base.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    try:
        ws = WSConnection(ConnectionType.CLIENT)
        await stream.send_all(ws.send(Request(host=host, target="/socket.io/?EIO=4&transport=websocket")))
        with trio.fail_after(WAIT):
            while not any(isinstance(e, AcceptConnection) for e in ws.events()):
                ws.receive_data(await stream.receive_some(65536))
        await stream.send_all(ws.send(TextMessage(data="40")))
        yield
    finally:
        await trio.aclose_forcefully(stream)


class RawPolling:
    """A long-polling client: GETs and POSTs payloads, decoded with the codec under test."""

    def __init__(self, client: httpx.AsyncClient, base: str, revision: int) -> None:
        self.client = client
        self.base = base
        self.revision = revision
        self.sid: str | None = None

    def url(self, **extra: str) -> str:
        params = {"EIO": str(self.revision), "transport": "polling", **extra}
        if self.sid:
            params["sid"] = self.sid
        return self.base + "/socket.io/?" + "&".join(f"{k}={v}" for k, v in params.items())

    async def open(self, **query: str) -> dict[str, Any]:
        packets = await self.get(**query)
        assert packets[0].type is eio.PacketType.OPEN, packets
        handshake = orjson.loads(packets[0].data)
        self.sid = handshake["sid"]
        return handshake

    async def get(self, timeout: float = WAIT, **query: str) -> list[eio.Packet]:
        with trio.fail_after(timeout):
            response = await self.client.get(self.url(**query), timeout=timeout)
        assert response.status_code == 200, (response.status_code, response.text)
        return eio.decode_payload(response.content, self.revision, content_type=response.headers.get("content-type"))

    async def post(self, *packets: eio.Packet) -> httpx.Response:
        body, content_type = eio.encode_payload(packets, self.revision)
        with trio.fail_after(WAIT):
            return await self.client.post(self.url(), content=body, headers={"content-type": content_type})


@asynccontextmanager
async def raw_polling(base: str, *, eio_revision: int = 4) -> AsyncIterator[RawPolling]:
    async with httpx.AsyncClient() as client:
        yield RawPolling(client, base, eio_revision)


def message(data: str | bytes) -> eio.Packet:
    return eio.Packet(eio.PacketType.MESSAGE, data)
