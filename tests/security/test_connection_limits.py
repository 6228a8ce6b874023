"""Connections that would never close: every one is bounded in time, and one address in number.

Each story reproduces a way a client held a connection (and so a file descriptor) for ever: staying
idle after a response, asking to close and not being closed, announcing a body and never sending it,
not reading its response, opening more connections than any office would. The timeouts are lowered to
fractions of a second so that each story takes about as long; every wait is bounded.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import trio

from trisails import App

#: A second loopback address: the attacker's, so the server sees two different clients.
ATTACKER = "127.0.0.2"
#: How long any story waits for the server to do what it should, at most.
WAIT = 5.0


def small_app(**http: object) -> App:
    app = App()
    app.action("say/hello", lambda req, res: res.ok("hello"))
    app.action("say/everything", lambda req, res: res.ok("x" * 16_000_000))
    for name, value in http.items():
        setattr(app.settings.http, name, value)
    return app


async def open_raw(url: str, *, source: str | None = None) -> trio.SocketStream:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return await trio.open_tcp_stream(parts.hostname, parts.port, local_address=source)


async def read_until_closed(stream: trio.abc.Stream, timeout: float = WAIT) -> bytes:
    """Everything the server sends until it closes the connection; fails if it has not within ``timeout``."""
    received = b""
    with trio.fail_after(timeout):
        while True:
            try:
                chunk = await stream.receive_some(65536)
            except trio.BrokenResourceError:  # reset: closed too
                return received
            if not chunk:
                return received
            received += chunk


@contextmanager
def logged(fragment: str) -> Iterator[trio.Event]:
    """An event set when a ``trisails.realtime`` log record contains ``fragment``."""
    seen = trio.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if fragment in record.getMessage():
                seen.set()

    handler = Watch()
    logger = logging.getLogger("trisails.realtime")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


async def test_an_idle_keep_alive_connection_is_closed_after_any_kind_of_answer() -> None:
    """After an action, a 404, the health check or a polling handshake (quart's side and the endpoint's
    alike) the client keeps the connection and sends nothing more: it is closed after
    ``keep_alive_timeout``. It used to stay open for ever."""
    app = small_app(keep_alive_timeout=0.3)
    async with app.lifted() as url:
        for target in ("/say/hello", "/nothing-here", "/__health", "/socket.io/?EIO=4&transport=polling"):
            stream = await open_raw(url)
            async with stream:
                await stream.send_all(f"GET {target} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
                answer = await read_until_closed(stream)
            assert answer.startswith(b"HTTP/1.1 "), (target, answer[:80])
            assert b"connection: close" not in answer.lower()  # kept alive, then closed for idling


async def test_keep_alive_still_serves_a_second_request_before_the_timeout() -> None:
    app = small_app(keep_alive_timeout=30.0)
    async with app.lifted() as url:
        async with await open_raw(url) as stream:
            for _ in range(2):
                await stream.send_all(b"GET /say/hello HTTP/1.1\r\nhost: x\r\n\r\n")
                answer = b""
                with trio.fail_after(WAIT):
                    while not answer.endswith(b"hello"):
                        answer += await stream.receive_some(65536)
                assert answer.startswith(b"HTTP/1.1 200")


async def test_a_request_that_says_connection_close_is_closed_once_answered() -> None:
    """The client asks to close; it was answered ``Connection: close`` and then left open."""
    app = small_app(keep_alive_timeout=60.0)  # so that only honouring the header can close it in time
    async with app.lifted() as url:
        for target in ("/say/hello", "/nothing-here"):
            async with await open_raw(url) as stream:
                await stream.send_all(f"GET {target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".encode())
                answer = await read_until_closed(stream, timeout=2.0)
            assert b"connection: close" in answer.lower()


async def test_a_request_body_that_never_arrives_does_not_hold_the_connection() -> None:
    """A head announces 100 bytes of body and two come; to an action and to the polling endpoint alike
    the connection is closed after ``body_timeout`` (quart's own 408 came after 60 s and left the socket
    open)."""
    app = small_app(body_timeout=0.3, keep_alive_timeout=60.0)
    async with app.lifted() as url:
        for target in ("/say/hello", "/socket.io/?EIO=4&transport=polling&sid=unknown"):
            async with await open_raw(url) as stream:
                await stream.send_all(f"POST {target} HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nab".encode())
                await read_until_closed(stream)


async def test_a_slow_body_that_keeps_trickling_is_cut_off_too() -> None:
    """One byte at a time keeps a per-read timeout happy for ever; the body's deadline is for all of it."""
    app = small_app(body_timeout=0.5, keep_alive_timeout=60.0)
    async with app.lifted() as url:
        async with await open_raw(url) as stream:
            await stream.send_all(b"POST /say/hello HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n")
            closed = False
            with trio.fail_after(WAIT):
                for _ in range(1000):  # bounded: far more bytes than the deadline lets through
                    try:
                        await stream.send_all(b"a")
                    except trio.BrokenResourceError:
                        closed = True
                        break
                    with trio.move_on_after(0.05):  # paces the drip, and notices the close
                        if not await stream.receive_some(65536):
                            closed = True
                            break
            assert closed


async def test_a_client_that_never_reads_its_response_is_cut_off() -> None:
    """A 16 MB answer to a client that reads nothing fills both kernels' buffers; the server's write
    then waits. After ``write_timeout`` the connection is closed, and the client, reading at last, gets
    only part of the answer."""
    app = small_app(write_timeout=0.3, keep_alive_timeout=60.0)
    async with app.lifted() as url:
        parts = urlsplit(url)
        raw = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the server blocks soon
        await raw.connect((parts.hostname, parts.port))
        async with trio.SocketStream(raw) as stream:
            with logged("did not read its response") as cut_off:
                await stream.send_all(b"GET /say/everything HTTP/1.1\r\nhost: x\r\n\r\n")
                with trio.fail_after(WAIT):
                    await cut_off.wait()
            answer = await read_until_closed(stream)
        assert answer.startswith(b"HTTP/1.1 200")
        assert len(answer) < 16_000_000


async def test_one_address_cannot_hold_more_connections_than_its_cap() -> None:
    """An attacker opens connections from one address and keeps them; past ``max_connections_per_ip``
    each new one is closed at once, without an answer, while a visitor from another address is served.
    When the attacker lets one go, it may open one again."""
    assert App().settings.http.max_connections_per_ip == 2_000  # on by default
    app = small_app(max_connections_per_ip=5, keep_alive_timeout=60.0)
    async with app.lifted() as url:
        held: list[trio.SocketStream] = []
        try:
            for _ in range(5):  # kept-alive connections, each answered once
                stream = await open_raw(url, source=ATTACKER)
                held.append(stream)
                await stream.send_all(b"GET /say/hello HTTP/1.1\r\nhost: x\r\n\r\n")
                with trio.fail_after(WAIT):
                    assert (await stream.receive_some(65536)).startswith(b"HTTP/1.1 200")
            with logged("refusing connections from 127.0.0.2") as refused:
                async with await open_raw(url, source=ATTACKER) as sixth:
                    await sixth.send_all(b"GET /say/hello HTTP/1.1\r\nhost: x\r\n\r\n")
                    assert await read_until_closed(sixth) == b""
                assert refused.is_set()
            async with await open_raw(url) as visitor:  # from 127.0.0.1
                await visitor.send_all(b"GET /say/hello HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                assert (await read_until_closed(visitor)).startswith(b"HTTP/1.1 200")
            await held.pop().aclose()
            answer = b""
            with trio.fail_after(WAIT):
                for _ in range(100):  # bounded: the server notices the close within a few of these
                    async with await open_raw(url, source=ATTACKER) as again:
                        await again.send_all(b"GET /say/hello HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                        answer = await read_until_closed(again)
                    if answer:
                        break
                    await trio.sleep(0.02)
            assert answer.startswith(b"HTTP/1.1 200")
        finally:
            for stream in held:
                await stream.aclose()
