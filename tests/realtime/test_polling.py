"""Long-polling, and the upgrade from polling to websocket, as byte transcripts."""

from __future__ import annotations

import httpx
import trio
from trio_websocket import open_websocket_url

from tests.support.raw import RawWebSocket, close_tcp, message, raw_polling, ws_url
from trisails import App
from trisails.protocol import engineio as eio


async def test_a_v4_polling_client_connects_sends_and_receives(reference_url: str) -> None:
    async with raw_polling(reference_url, eio_revision=4) as polling:
        await polling.open()
        assert (await polling.post(message('0{"token":"t"}'))).text == "ok"
        packets = await polling.get()
        assert packets[0].data.startswith('0{"sid":"')  # type: ignore[union-attr]
        events = packets[1:] or await polling.get()
        assert events == [message('2["auth",{"token":"t"}]')]
        await polling.post(message('2["message","a"]'), message('21["message-with-ack","b"]'))
        received: list[eio.Packet] = []
        while len(received) < 2:
            received += await polling.get()
        assert received == [message('2["message-back","a"]'), message('31["b"]')]


async def test_a_v3_polling_client_gets_the_text_payload_with_lengths(reference_url: str) -> None:
    async with raw_polling(reference_url, eio_revision=3) as polling:
        polling.sid = None
        response = await polling.client.get(polling.url())
        assert response.headers["content-type"] == "text/plain; charset=UTF-8"
        packets = eio.decode_payload(response.content, 3, content_type=response.headers["content-type"])
        open_packet = "0" + packets[0].data  # type: ignore[operator]
        assert response.text.startswith(f"{len(open_packet)}:{open_packet}")


async def test_binary_goes_back_to_a_v3_polling_client_as_an_xhr2_payload(reference_url: str) -> None:
    async with raw_polling(reference_url, eio_revision=3) as polling:
        await polling.open()
        await polling.post(message('51-["message",{"_placeholder":true,"num":0}]'), message(b"\x01\x02\x03"))
        body = b""
        with trio.fail_after(5):
            while b"message-back" not in body:
                response = await polling.client.get(polling.url())
                body = response.content
        assert response.headers["content-type"] == "application/octet-stream"
        assert body.endswith(b"\x01\x04\xff\x04\x01\x02\x03")


async def test_a_b64_client_gets_binary_as_base64_text(reference_url: str) -> None:
    async with raw_polling(reference_url, eio_revision=3) as polling:
        await polling.open(b64="1")
        await polling.post(message('51-["message",{"_placeholder":true,"num":0}]'), message(b"\x01\x02\x03"))
        text = ""
        with trio.fail_after(5):
            while "message-back" not in text:
                text = (await polling.client.get(polling.url())).text
        assert text.endswith("6:b4AQID")


async def test_a_polling_session_upgrades_to_websocket(reference_url: str) -> None:
    async with raw_polling(reference_url, eio_revision=4) as polling:
        handshake = await polling.open()
        await polling.post(message("0"))
        assert (await polling.get())[0].data.startswith('0{"sid"')  # type: ignore[union-attr]
        url = ws_url(reference_url, eio_revision=4, sid=handshake["sid"])
        async with open_websocket_url(url) as connection:
            ws = RawWebSocket(connection)
            try:
                await ws.send("2probe")
                await ws.expect("3probe")
                async with trio.open_nursery() as nursery:
                    # the pending poll is released with a noop so the client can pause polling
                    nursery.start_soon(polling.get)
                    await trio.sleep(0.05)
                    await ws.send("5")
                await ws.send('42["message","over websocket"]')
                frame = await ws.receive()
                while frame in ("2", '42["auth",{}]'):
                    frame = await ws.receive()
                assert frame == '42["message-back","over websocket"]'
                response = await polling.client.get(polling.url())
                assert response.status_code == 400
            finally:
                await close_tcp(connection)


async def test_two_overlapping_polls_close_the_session() -> None:
    async with App().lifted() as url, raw_polling(url, eio_revision=4) as polling:
        await polling.open()
        async with trio.open_nursery() as nursery:
            results: list[httpx.Response] = []

            async def poll() -> None:
                results.append(await polling.client.get(polling.url(), timeout=5))

            nursery.start_soon(poll)
            await trio.sleep(0.05)
            nursery.start_soon(poll)
        assert sorted(r.status_code for r in results) == [200, 400]
        response = await polling.client.get(polling.url())
        assert response.json() == {"code": 1, "message": "Session ID unknown"}


async def test_a_polling_body_over_max_payload_is_refused() -> None:
    from tests.support.apps import reference_app

    app = reference_app(max_payload=1000)
    async with app.lifted() as url, raw_polling(url, eio_revision=4) as polling:
        await polling.open()
        response = await polling.post(message("2" + '["message","' + "x" * 2000 + '"]'))
        assert response.status_code == 413
        response = await polling.client.get(polling.url())
        assert response.status_code == 400
