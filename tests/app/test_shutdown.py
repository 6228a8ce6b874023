"""Lowering an app: nothing new gets in, what is running finishes, then everyone is told."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio
import trio.testing

from trisails import App, Model, Request, Required, Response, Settings
from trisails.client import connect


class Order(Model):
    item = Required(str)


def shop(tmp_path: Path) -> tuple[App, trio.Event]:
    settings = Settings()
    settings.datastores.url = f"sqlite:///{tmp_path}/db.sqlite"
    settings.http.graceful_timeout = 3.0
    app = App(settings)
    app.model(Order)
    started = trio.Event()

    @app.action("orders/slow")
    async def slow(req: Request, res: Response) -> None:
        started.set()
        await trio.sleep(0.5)  # a request still running when the app is asked to lower
        res.ok(await Order.create({"item": req.param("item")}))

    return app, started


async def test_a_socket_request_in_flight_finishes_and_its_write_lands(tmp_path: Path) -> None:
    app, started = shop(tmp_path)
    answers: list[tuple[object, int]] = []
    answered = trio.Event()
    async with trio.open_nursery() as nursery:
        url = await nursery.start(app.lift, "127.0.0.1", 0)
        async with connect(url, reconnection=False) as buyer:

            async def order() -> None:
                body, jwr = await buyer.post("/orders/slow", {"item": "teapot"})
                answers.append((body, jwr.status_code))
                answered.set()

            nursery.start_soon(order)
            await started.wait()
            app.lower()
            with trio.fail_after(5):
                await answered.wait()
    body, status = answers[0]
    assert status == 200 and isinstance(body, dict) and body["item"] == "teapot"
    async with app.lifted() as url:  # the order was committed, not cut short
        assert [o["item"] for o in await Order.find()] == ["teapot"]


async def test_while_lowering_new_socket_requests_and_new_clients_are_turned_away(tmp_path: Path) -> None:
    app, started = shop(tmp_path)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(app.lift, "127.0.0.1", 0)
        async with connect(url, reconnection=False) as first, connect(url, reconnection=False) as second:
            finished = trio.Event()

            async def order() -> None:
                assert (await first.post("/orders/slow", {"item": "kettle"}))[1].status_code == 200
                finished.set()

            nursery.start_soon(order)
            await started.wait()
            app.lower()
            await trio.testing.wait_all_tasks_blocked()  # the lift task has begun to drain
            assert app.draining
            body, jwr = await second.get("/order")
            assert jwr.status_code == 503 and "shutting down" in body
            async with httpx.AsyncClient(base_url=url) as http:
                refused = await http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
                assert refused.status_code == 503
            with trio.fail_after(5):
                await finished.wait()  # the request that was running still got its answer


async def test_an_idle_keep_alive_connection_does_not_hold_up_lowering(tmp_path: Path) -> None:
    app, _ = shop(tmp_path)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(app.lift, "127.0.0.1", 0)
        async with httpx.AsyncClient(base_url=url) as browser:
            assert (await browser.get("/order")).status_code == 200  # the connection stays open, idle
            began = trio.current_time()
            app.lower()
    assert trio.current_time() - began < 1.5  # not graceful_timeout (3 s)
