"""A polling POST cut short runs nothing (issue 16, item 11).

A long-polling client sends its messages as the body of a POST. Before, a POST that announced
``Content-Length: 500``, sent 60 bytes and hung up had those 60 bytes handled as a complete payload:
the requests inside them ran. Over plain HTTP the same body is discarded; now it is discarded here too.
"""

from __future__ import annotations

import logging

import httpx
import pytest
import trio

from trisails import App
from tests.support.raw import RawPolling, message


async def test_a_post_that_hangs_up_halfway_runs_none_of_its_packets(caplog: pytest.LogCaptureFixture) -> None:
    app = App()
    calls: list[object] = []

    @app.io.on("connection")
    def on_connection(socket) -> None:  # type: ignore[no-untyped-def]
        socket.on("boom", lambda value: calls.append(value))

    caplog.set_level(logging.INFO, logger="trisails.realtime")
    with trio.fail_after(20):
        async with app.lifted() as url, httpx.AsyncClient(timeout=5) as http:
            client = RawPolling(http, url, 4)
            await client.open()
            assert (await client.post(message("0"))).status_code == 200
            await client.get()  # the CONNECT answer

            # the first 60 bytes of five packets: four whole ones and the start of the fifth
            body = "\x1e".join(f'42["boom",{i}]' for i in range(1, 6)).encode()[:60]
            host, port = url.removeprefix("http://").split(":")
            stream = await trio.open_tcp_stream(host, int(port))
            async with stream:
                await stream.send_all(
                    f"POST /socket.io/?EIO=4&transport=polling&sid={client.sid} HTTP/1.1\r\nHost: {host}\r\n"
                    "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: 500\r\n\r\n".encode() + body
                )
            # wait (bounded) until the server has dealt with the cut-short request, one way or the other
            with trio.fail_after(5):
                while not calls and "truncated" not in caplog.text:
                    await trio.sleep(0.01)
            assert calls == []

            # the session itself goes on: the next complete POST runs
            assert (await client.post(message('2["boom","after"]'))).status_code == 200
            with trio.fail_after(5):
                while not calls:
                    await trio.sleep(0.01)
            assert calls == ["after"]
