"""Raw Engine.IO clients over :mod:`trisails.testing`: the frames a test sends and expects, in memory.

They are the in-memory twins of :mod:`tests.support.raw`, for stories about time: run them on trio's
mock clock (pytest-trio's ``autojump_clock`` fixture) and a heartbeat or a timeout happens at exactly
the moment the settings say, in no real time. Nothing here waits with a bound of its own: under the
mock clock a missing frame would only move time on, so a story asserts the time at which things
happen (``trio.current_time()``) instead.
"""

from __future__ import annotations

from typing import Any

import orjson

from trisails.protocol import engineio as eio
from trisails.testing import InMemoryServer, MemoryResponse, MemoryWebSocket


def target(*, eio_revision: int = 4, transport: str = "websocket", **query: str) -> str:
    params = "&".join([*(f"{k}={v}" for k, v in query.items()), f"EIO={eio_revision}", f"transport={transport}"])
    return "/socket.io/?" + params


async def expect(ws: MemoryWebSocket, expected: str | bytes) -> None:
    frame = await ws.receive()
    assert frame == expected, f"expected frame {expected!r}, got {frame!r}"


async def handshake(ws: MemoryWebSocket) -> dict[str, Any]:
    """Receive the OPEN packet and return its JSON."""
    frame = await ws.receive()
    assert isinstance(frame, str) and frame.startswith("0"), f"expected an open packet, got {frame!r}"
    return orjson.loads(frame[1:])


async def connect_v4(ws: MemoryWebSocket, auth: str = "") -> str:
    """Open, connect the main namespace over Engine.IO v4, and return the socket id."""
    await handshake(ws)
    await ws.send("40" + auth)
    frame = await ws.receive()
    assert isinstance(frame, str) and frame.startswith("40{"), frame
    return orjson.loads(frame[2:])["sid"]


class MemoryPolling:
    """A long-polling client on :meth:`InMemoryServer.request`: GETs and POSTs payloads."""

    def __init__(self, server: InMemoryServer, revision: int = 4) -> None:
        self.server = server
        self.revision = revision
        self.sid: str | None = None

    def target(self) -> str:
        query = {"sid": self.sid} if self.sid else {}
        return target(eio_revision=self.revision, transport="polling", **query)

    async def open(self) -> dict[str, Any]:
        packets = await self.get()
        assert packets[0].type is eio.PacketType.OPEN, packets
        opened = orjson.loads(packets[0].data)  # type: ignore[arg-type]
        self.sid = opened["sid"]
        return opened

    async def get_response(self) -> MemoryResponse:
        return await self.server.request("GET", self.target())

    async def get(self) -> list[eio.Packet]:
        response = await self.get_response()
        assert response.status == 200, (response.status, response.body)
        return eio.decode_payload(response.body, self.revision, content_type=response.headers.get("content-type"))

    async def post(self, *packets: eio.Packet) -> MemoryResponse:
        body, content_type = eio.encode_payload(packets, self.revision)
        return await self.server.request("POST", self.target(), body, headers=[("content-type", content_type)])

    def upgrade_target(self) -> str:
        assert self.sid is not None
        return target(eio_revision=self.revision, sid=self.sid)


def message(data: str | bytes) -> eio.Packet:
    return eio.Packet(eio.PacketType.MESSAGE, data)


SESSION_ID_UNKNOWN = (400, b'{"code":1,"message":"Session ID unknown"}')
