"""Long-polling, and the upgrade from polling to websocket, as byte transcripts."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from tests.support.apps import reference_app
from tests.support.memory import SESSION_ID_UNKNOWN, MemoryPolling, expect
from tests.support.raw import message, raw_polling
from trisails import App
from trisails.protocol import engineio as eio
from trisails.testing import serve_in_memory


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


async def test_a_polling_session_upgrades_to_websocket(autojump_clock: trio.testing.MockClock) -> None:
    async with serve_in_memory(reference_app()) as server:
        polling = MemoryPolling(server)
        await polling.open()
        await polling.post(message("0"))
        assert (await polling.get())[0].data.startswith('0{"sid"')  # type: ignore[union-attr]
        ws = await server.websocket(polling.upgrade_target())
        await ws.send("2probe")
        await expect(ws, "3probe")
        async with trio.open_nursery() as nursery:
            released: list[list[eio.Packet]] = []

            async def poll() -> None:
                released.append(await polling.get())

            nursery.start_soon(poll)
            await trio.testing.wait_all_tasks_blocked()  # the poll is pending at the server
            await ws.send("5")
        assert released == [[eio.Packet(eio.PacketType.NOOP)]]  # released so the client can pause polling
        await ws.send('42["message","over websocket"]')
        await expect(ws, '42["message-back","over websocket"]')
        response = await polling.get_response()
        assert response.status == 400
        await ws.aclose()


def quiet_reference_app(upgrade_timeout: int) -> App:
    """The reference app with socket.io's heartbeat defaults, so nothing but the upgrade is due soon."""
    return reference_app(ping_interval=25000, ping_timeout=20000, upgrade_timeout=upgrade_timeout)


async def test_an_upgrade_whose_5_never_comes_is_abandoned_after_upgrade_timeout_and_the_session_keeps_polling(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serve_in_memory(quiet_reference_app(upgrade_timeout=10000)) as server:
        polling = MemoryPolling(server)
        await polling.open()
        await polling.post(message("0"))
        assert (await polling.get())[0].data.startswith('0{"sid"')  # type: ignore[union-attr]
        ws = await server.websocket(polling.upgrade_target())
        probed = trio.current_time()
        await ws.send("2probe")
        await expect(ws, "3probe")
        await trio.sleep_until(probed + 10.0)  # the client never sends "5"
        await trio.testing.wait_all_tasks_blocked()  # the server's timer, due now too, has run
        await ws.send("5")  # too late: the upgrade is over, and this websocket with it
        assert await ws.wait_closed() == 1000
        await polling.post(message('2["message","still polling"]'))
        assert await polling.get() == [message('2["message-back","still polling"]')]


async def test_the_probing_websocket_is_closed_at_upgrade_timeout(autojump_clock: trio.testing.MockClock) -> None:
    # engine.io closes the probe transport when its upgrade timer fires (socket.ts, maybeUpgrade)
    async with serve_in_memory(quiet_reference_app(upgrade_timeout=10000)) as server:
        polling = MemoryPolling(server)
        await polling.open()
        await polling.post(message("0"))
        await polling.get()
        ws = await server.websocket(polling.upgrade_target())
        probed = trio.current_time()
        await ws.send("2probe")
        await expect(ws, "3probe")
        assert await ws.wait_closed() == 1000
        assert trio.current_time() - probed == pytest.approx(10.0)


async def test_two_overlapping_polls_close_the_session(autojump_clock: trio.testing.MockClock) -> None:
    async with serve_in_memory(App()) as server:
        polling = MemoryPolling(server)
        await polling.open()
        results: list[int] = []

        async def poll() -> None:
            results.append((await polling.get_response()).status)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(poll)
            await trio.testing.wait_all_tasks_blocked()  # the first poll is pending at the server
            nursery.start_soon(poll)
        assert sorted(results) == [200, 400]
        response = await polling.get_response()
        assert (response.status, response.body) == SESSION_ID_UNKNOWN


async def test_a_polling_body_over_max_payload_is_refused() -> None:
    app = reference_app(max_payload=1000)
    async with app.lifted() as url, raw_polling(url, eio_revision=4) as polling:
        await polling.open()
        response = await polling.post(message("2" + '["message","' + "x" * 2000 + '"]'))
        assert response.status_code == 413
        response = await polling.client.get(polling.url())
        assert response.status_code == 400
