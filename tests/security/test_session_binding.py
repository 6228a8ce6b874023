"""Knowing a session's id is not enough to drive it (issue 16, item 2).

A revision-3 client's socket id is its Engine.IO sid, and apps broadcast socket ids (the quickstart's
"who is here"). Before, whoever heard one could POST virtual requests under it (they ran with the
victim's session), poll the victim's messages, and upgrade the victim's session to a websocket of
their own. Now every polling request and every upgrade must come from the address that made the
handshake (the forwarded one, behind a proxy the app trusts) and carry the session cookie the
handshake carried; the rest are answered as an unknown sid.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import orjson
import pytest
import trio

from trisails import App
from trisails.protocol import engineio as eio
from trisails.realtime.endpoint import client_address
from tests.support.raw import RawPolling, message, raw_websocket

#: A second loopback address: the attacker's, so the server sees two different clients.
ATTACKER = "127.0.0.2"
UNKNOWN_SID = {"code": 1, "message": "Session ID unknown"}
WHOAMI = '20["get",{"method":"get","headers":{},"data":{},"url":"/whoami"}]'


def make_app(**sockets: object) -> App:
    """An app whose ``/login`` puts a user in the session and ``/whoami`` reads it back."""
    app = App()
    for name, value in sockets.items():
        setattr(app.settings.sockets, name, value)

    async def login(req, res):  # type: ignore[no-untyped-def]
        req.session["user"] = "victim"
        return res.ok("logged in")

    app.action("login", login)
    app.action("whoami", lambda req, res: res.ok(req.session.get("user")))
    return app


@asynccontextmanager
async def client(url: str, address: str = "127.0.0.1", **headers: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=url, transport=transport, headers=headers, timeout=5) as http:
        yield http


async def victim_session(http: httpx.AsyncClient, url: str) -> RawPolling:
    """The victim logs in over HTTP (its client keeps the cookie), then opens a v3 polling session."""
    assert (await http.get("/login")).status_code == 200
    victim = RawPolling(http, url, 3)
    await victim.open(__sails_io_sdk_version="1.2.1")
    return victim


async def answer_of(client: RawPolling) -> object:
    """Poll until the answer to the ``WHOAMI`` virtual request comes; return its body."""
    while True:
        for packet in await client.get():
            if isinstance(packet.data, str) and packet.data.startswith("30"):
                return orjson.loads(packet.data[2:])[0]["body"]


async def upgrade_from(url: str, address: str, sid: str) -> tuple[int, bytes]:
    """Try to upgrade ``sid`` to a websocket from ``address``; return the answer's status and body."""
    host, port = url.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port), local_address=address)
    async with stream:
        await stream.send_all(
            f"GET /socket.io/?EIO=3&transport=websocket&sid={sid} HTTP/1.1\r\nHost: {host}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode()
        )
        answer = b""
        while chunk := await stream.receive_some(65536):  # the refusal ends with the connection
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_a_sid_heard_from_another_address_drives_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """The attacker heard the victim's socket id (= sid) and tries, from another address, to make a
    request as the victim, to read the victim's messages, and to take the session to its own
    websocket: each is refused as an unknown sid and logged, and the victim goes on unharmed."""
    app = make_app()
    caplog.set_level(logging.INFO, logger="trisails.realtime")
    with trio.fail_after(20):
        async with app.lifted() as url, client(url) as http, client(url, ATTACKER) as attacker:
            victim = await victim_session(http, url)
            sid = victim.sid
            assert sid in app.io.sockets  # revision 3: the socket id the app may broadcast is the sid

            stolen = RawPolling(attacker, url, 3)
            stolen.sid = sid
            posted = await stolen.post(message(WHOAMI))
            assert (posted.status_code, posted.json()) == (400, UNKNOWN_SID)
            polled = await attacker.get(stolen.url())
            assert (polled.status_code, polled.json()) == (400, UNKNOWN_SID)
            assert await upgrade_from(url, ATTACKER, sid) == (400, b"Session ID unknown")
            assert "is bound to another address" in caplog.text

            # the victim's own session still works, and nothing ran in its name meanwhile
            assert (await victim.post(message(WHOAMI))).status_code == 200
            assert await answer_of(victim) == "victim"


async def test_the_same_address_without_the_session_cookie_drives_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """Behind one NAT the attacker shares the victim's address, but not its session cookie: a
    request with no cookie, or with a cookie of its own, is refused; the victim's own requests pass."""
    app = make_app()
    caplog.set_level(logging.INFO, logger="trisails.realtime")
    with trio.fail_after(20):
        async with app.lifted() as url, client(url) as http:
            victim = await victim_session(http, url)
            async with client(url) as neighbour:
                stolen = RawPolling(neighbour, url, 3)
                stolen.sid = victim.sid
                posted = await stolen.post(message(WHOAMI))
                assert (posted.status_code, posted.json()) == (400, UNKNOWN_SID)
                assert (await neighbour.get("/whoami")).status_code == 200  # now it has a cookie, another one
                posted = await stolen.post(message(WHOAMI))
                assert (posted.status_code, posted.json()) == (400, UNKNOWN_SID)
            assert "without the session cookie of its handshake" in caplog.text
            assert (await victim.post(message(WHOAMI))).status_code == 200
            assert await answer_of(victim) == "victim"


async def test_behind_a_trusted_proxy_the_forwarded_address_binds() -> None:
    """With ``sockets.trust_proxy = 1`` every request comes from the proxy's address and the client's is
    the last ``X-Forwarded-For`` entry: that is what a session is bound to. Without the setting, a
    client cannot borrow an address by sending the header itself."""
    app = make_app(trust_proxy=1)
    with trio.fail_after(20):
        async with app.lifted() as url:
            async with client(url, **{"x-forwarded-for": "203.0.113.7"}) as http:
                victim = RawPolling(http, url, 3)
                await victim.open()
                assert app._engine.sessions.get(victim.sid).handshake.address == "203.0.113.7"  # type: ignore[union-attr]
            async with client(url, **{"x-forwarded-for": "198.51.100.9"}) as other:
                stolen = RawPolling(other, url, 3)
                stolen.sid = victim.sid
                posted = await stolen.post(message(WHOAMI))
                assert (posted.status_code, posted.json()) == (400, UNKNOWN_SID)
            # the victim's spoofed first entry is ignored: only the entry the proxy added counts
            async with client(url, **{"x-forwarded-for": "10.9.9.9, 203.0.113.7"}) as http:
                victim.client = http
                assert (await victim.post(message(WHOAMI))).status_code == 200

    app = make_app()  # trust_proxy = 0, the default: the header is the client's word, worth nothing
    with trio.fail_after(20):
        async with app.lifted() as url, client(url) as http:
            victim = RawPolling(http, url, 3)
            await victim.open()
            async with client(url, ATTACKER, **{"x-forwarded-for": "127.0.0.1"}) as attacker:
                stolen = RawPolling(attacker, url, 3)
                stolen.sid = victim.sid
                posted = await stolen.post(message(WHOAMI))
                assert (posted.status_code, posted.json()) == (400, UNKNOWN_SID)


async def test_private_socket_ids_keep_a_revision_3_sid_out_of_the_app() -> None:
    """``sockets.private_sid = True`` gives revision-3 sockets an id of their own, so the id an app
    broadcasts no longer names the Engine.IO session at all."""
    app = make_app(private_sid=True)
    with trio.fail_after(20):
        async with app.lifted() as url, raw_websocket(url, eio_revision=3) as ws:
            sid = (await ws.handshake())["sid"]
            await ws.expect("40")
            with trio.fail_after(5):
                while not app.io.sockets:
                    await trio.sleep(0.01)
            [socket_id] = app.io.sockets
            assert socket_id != sid and len(socket_id) == len(sid)
            assert eio.HandshakeError.UNKNOWN_SID.message == UNKNOWN_SID["message"]


@pytest.mark.parametrize(
    ("peer", "forwarded", "hops", "expected"),
    [
        ("10.0.0.1", None, 1, "10.0.0.1"),  # no header: the peer
        ("10.0.0.1", "203.0.113.7", 0, "10.0.0.1"),  # not trusted: the header is ignored
        ("10.0.0.1", "203.0.113.7", 1, "203.0.113.7"),  # one proxy: its entry
        ("10.0.0.1", "6.6.6.6, 203.0.113.7", 1, "203.0.113.7"),  # the client's own entries are never read
        ("10.0.0.1", "6.6.6.6, 203.0.113.7, 10.0.0.2", 2, "203.0.113.7"),  # two proxies
        ("10.0.0.1", " 203.0.113.7 ,", 3, "203.0.113.7"),  # fewer entries than hops: the first one
    ],
)
def test_the_forwarded_address_is_the_one_the_trusted_proxies_wrote(peer: str, forwarded: str | None, hops: int, expected: str) -> None:
    assert client_address(peer, forwarded, hops) == expected
