"""JSON nested as deep as a parser allows, sent to every place that takes JSON from a client: always a
400 (a parse error over a socket), never a RecursionError, a 500, or a request left unanswered."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson

from tests.models.apps import Pet, User
from tests.support.raw import raw_websocket
from trisails import App, Settings
from trisails.client import connect


def nested(depth: int) -> str:
    """``[[[...]]]``, ``depth`` levels: JSON that parsers accept and recursive code chokes on."""
    return "[" * depth + "]" * depth


def pets_app(tmp_path: Path) -> App:
    settings = Settings()
    settings.datastores.url = f"sqlite:///{tmp_path}/db.sqlite"
    app = App(settings)
    app.model(User)
    app.model(Pet)
    app.action("echo/body", lambda req, res: res.ok(req.body))
    return app


async def test_a_nested_list_as_a_virtual_requests_url_is_answered_with_a_parse_error(tmp_path: Path) -> None:
    """A socket sends a GET whose ``url`` is a list nested 900 deep. It used to get no answer at all (a
    RecursionError was only logged); now the ack is a parse error, and the socket goes on working."""
    async with pets_app(tmp_path).lifted() as url:
        async with raw_websocket(url, __sails_io_sdk_version="1.2.1") as ws:
            await ws.handshake()
            await ws.send("40")
            assert str(await ws.receive()).startswith("40")
            for depth in (900, 40):
                await ws.send(f'421["get",{{"url":{nested(depth)}}}]')
                frame = await ws.receive()
                assert isinstance(frame, str) and frame.startswith("431["), frame[:80]
                error = orjson.loads(frame[3:])[0]
                assert error["status"] == 400 and error["code"] == "SAILS:HOOK:SOCKETS:PARSE_VIRTUAL_REQ"
                assert "nested more than 32 levels" in error["details"]
            await ws.send('422["get",{"url":"/echo/body","data":{"still":"here"}}]')
            assert orjson.loads(str(await ws.receive())[3:])[0]["body"] == {"still": "here"}


async def test_nested_values_in_writes_are_400_over_http_and_sockets(tmp_path: Path) -> None:
    """An attacker nests values 1,000 deep in a create, an update and a replace body (a 500 with a
    RecursionError traceback before), and in JSON text inside parameters; each is a 400, and the
    server keeps serving everyone."""
    async with pets_app(tmp_path).lifted() as url, httpx.AsyncClient(base_url=url) as http:
        owner = (await http.post("/user", json={"name": "ann"})).json()
        json_body = {"content-type": "application/json"}
        for depth in (33, 500, 1000):
            deep = nested(depth)
            attempts = [
                http.post("/user", content=f'{{"name":"x","age":{deep}}}', headers=json_body),
                http.post("/user", content=f'{{"name":"y","pets":{deep}}}', headers=json_body),
                http.patch(f"/user/{owner['id']}", content=f'{{"age":{deep}}}', headers=json_body),
                http.put(f"/user/{owner['id']}/pets", content=deep, headers=json_body),
                http.post("/echo/body", content=deep, headers=json_body),
                http.post("/user", json={"name": "z", "pets": deep}),  # JSON text as a parameter
                http.get("/user", params={"where": f'{{"name":{deep}}}'}),
                http.get("/user", params={"sort": deep}),
            ]
            for attempt in attempts:
                response = await attempt
                assert response.status_code == 400, (depth, response.request.url, response.text[:200])
                assert "Traceback" not in response.text
        fine = await http.post("/echo/body", content=nested(32), headers=json_body)
        assert fine.status_code == 200  # 32 levels, the default limit, are accepted
        async with connect(url) as socket:
            body, jwr = await socket.post("/user", {"name": "w", "age": orjson.loads(nested(100))})
            assert jwr.status_code == 400, body
            body, jwr = await socket.post("/echo/body", orjson.loads(nested(30)))
            assert jwr.status_code == 200
        assert (await http.get(f"/user/{owner['id']}")).json()["name"] == "ann"


async def test_a_body_past_max_body_size_is_refused_unread(tmp_path: Path) -> None:
    app = pets_app(tmp_path)
    app.settings.http.max_body_size = 10_000
    async with app.lifted() as url, httpx.AsyncClient(base_url=url) as http:
        big = await http.post("/echo/body", content=b'{"a":"' + b"x" * 20_000 + b'"}', headers={"content-type": "application/json"})
        assert big.status_code == 413
        assert (await http.post("/echo/body", json={"a": "x" * 9_000})).status_code == 200
