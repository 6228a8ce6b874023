"""TLS on the app's own port: https and wss, with a certificate made for the test by ``trustme``.

The clients are the real ones: httpx over https (pages and long-polling), socket.io-client 4 in Node
over wss (it is told to accept the test's authority-less certificate), and trisails' own client given a
context that trusts the test's authority. A client speaking plain HTTP to the TLS port is closed
quietly, and the timeouts hold over TLS too.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trustme

from tests.support.cli import run_cli, serving
from tests.support.jsclient import open_js_driver
from trisails import App
from trisails.client import connect

WAIT = 5.0


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def certificate(authority: trustme.CA, tmp_path: Path) -> dict[str, str]:
    """The PEM files of a certificate for 127.0.0.1 and localhost, as ``http.ssl`` takes them."""
    issued = authority.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    for pem in issued.cert_chain_pems[1:]:
        pem.write_to_path(str(cert), append=True)
    issued.private_key_pem.write_to_path(str(key))
    return {"cert": str(cert), "key": str(key)}


@pytest.fixture
def client_context(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    authority.configure_trust(context)
    return context


def tls_app(certificate: dict[str, str], **http: Any) -> tuple[App, list[bool]]:
    """An app with an action, a quart route that reports its scheme, and a socket handler that notes
    whether each socket's handshake was secure."""
    app = App()
    app.settings.http.ssl = certificate
    for name, value in http.items():
        setattr(app.settings.http, name, value)
    app.action("say/hello", lambda req, res: res.ok("hello"))
    secure: list[bool] = []

    @app.http.route("/scheme")
    async def scheme() -> str:
        from quart import request

        return request.scheme

    def connected(socket: Any) -> None:
        secure.append(socket.handshake.secure)
        socket.on("echo", lambda *args: list(args))  # the return value is the ack's one argument

    app.io.on("connection", connected)
    return app, secure


async def test_https_and_wss_share_the_one_port(certificate: dict[str, str], client_context: ssl.SSLContext) -> None:
    app, secure = tls_app(certificate)
    async with app.lifted() as url:
        assert url.startswith("https://127.0.0.1:")
        async with httpx.AsyncClient(base_url=url, verify=client_context) as browser:
            assert (await browser.get("/say/hello")).text == "hello"
            assert (await browser.get("/scheme")).text == "https"  # hypercorn serves it as https
            polling = await browser.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
            assert polling.status_code == 200 and polling.text.startswith("0{")
        async with open_js_driver() as js:
            node = await js.connect("v4", url, options={"transports": ["websocket"], "rejectUnauthorized": False})
            assert await node.emit("echo", 1, "two", {"3": b"\x04"}, ack=True) == [[1, "two", {"3": b"\x04"}]]
            polled = await js.connect("v4", url, options={"transports": ["polling"], "rejectUnauthorized": False})
            assert await polled.emit("echo", "over https polling", ack=True) == [["over https polling"]]
        async with connect(url, ssl_context=client_context) as python:
            assert (await python.get("/say/hello"))[0] == "hello"
            assert await python.call("echo", "wss") == [["wss"]]
    assert secure == [True, True, True]  # socket.handshake.secure, websocket and polling alike


async def test_a_client_without_tls_on_the_tls_port_is_closed_quietly(
    certificate: dict[str, str], client_context: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    """Plain HTTP, or a client that does not trust the certificate: that connection is closed, the log
    says so only at debug level, and everyone else is served."""
    app, _ = tls_app(certificate)
    caplog.set_level(logging.DEBUG, logger="trisails")
    async with app.lifted() as url:
        host, port = url.removeprefix("https://").split(":")
        async with await trio.open_tcp_stream(host, int(port)) as plain:
            await plain.send_all(b"GET /say/hello HTTP/1.1\r\nhost: x\r\n\r\n")
            with trio.fail_after(WAIT):
                try:
                    while await plain.receive_some(65536):  # a TLS alert at most, never an HTTP answer
                        pass
                except trio.BrokenResourceError:
                    pass
        async with httpx.AsyncClient(base_url=url) as distrustful:  # the system's authorities only
            with pytest.raises(httpx.ConnectError):
                await distrustful.get("/say/hello")
        async with httpx.AsyncClient(base_url=url, verify=client_context) as browser:
            assert (await browser.get("/say/hello")).text == "hello"
    failed = [r for r in caplog.records if "TLS handshake failed" in r.getMessage()]
    assert len(failed) == 2 and all(r.levelno == logging.DEBUG for r in failed)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_tls_handshake_that_never_comes_is_closed_after_the_handshake_timeout(certificate: dict[str, str]) -> None:
    app, _ = tls_app(certificate)
    app.settings.sockets.handshake_timeout = 300
    async with app.lifted() as url:
        host, port = url.removeprefix("https://").split(":")
        async with await trio.open_tcp_stream(host, int(port)) as silent:
            with trio.fail_after(WAIT):
                assert await silent.receive_some(65536) == b""


async def test_an_idle_https_connection_is_closed_after_the_keep_alive_timeout(
    certificate: dict[str, str], client_context: ssl.SSLContext
) -> None:
    app, _ = tls_app(certificate, keep_alive_timeout=0.3)
    async with app.lifted() as url:
        host, port = url.removeprefix("https://").split(":")
        stream = await trio.open_ssl_over_tcp_stream(host, int(port), ssl_context=client_context, https_compatible=True)
        async with stream:
            await stream.send_all(b"GET /say/hello HTTP/1.1\r\nhost: x\r\n\r\n")
            received = b""
            with trio.fail_after(WAIT):
                while chunk := await stream.receive_some(65536):
                    received += chunk
            assert received.startswith(b"HTTP/1.1 200") and received.endswith(b"hello")


async def test_the_command_line_serves_tls_with_certfile_and_keyfile(
    certificate: dict[str, str], client_context: ssl.SSLContext, tmp_path: Path
) -> None:
    async with serving("--certfile", certificate["cert"], "--keyfile", certificate["key"], "--port", "0", cwd=tmp_path) as server:
        assert server.url.startswith("https://")
        async with httpx.AsyncClient(base_url=server.url, verify=client_context) as browser:
            assert (await browser.get("/__health")).json()["status"] == "ok"


@pytest.mark.parametrize(
    "args, says",
    [
        (["--certfile", "missing.pem", "--keyfile", "missing-key.pem"], "no such file"),
        (["--certfile", "cert.pem"], "--certfile and --keyfile go together"),
    ],
)
async def test_a_certificate_that_cannot_be_used_is_a_startup_failure_of_one_line(
    args: list[str], says: str, tmp_path: Path
) -> None:
    finished = await run_cli(*args, "--port", "0", cwd=tmp_path)
    assert finished.returncode == 2
    assert says in finished.stderr
    assert "Traceback" not in finished.stderr


def test_http_ssl_takes_both_paths_or_nothing() -> None:
    from trisails import ConfigError

    app = App()
    app.settings.http.ssl = {"cert": "cert.pem"}
    with pytest.raises(ConfigError, match="http.ssl takes the paths of both PEM files"):
        app.settings.validate()
