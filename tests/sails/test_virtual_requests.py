"""Virtual requests: the same router and actions as HTTP, answered with the JWR sails.io.js expects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
import trio

from tests.support.raw import RawWebSocket, raw_websocket
from tests.support.settings import production_settings
from trisails import App, Request, Response, Settings, sails


@asynccontextmanager
async def sails_socket(url: str, **query: str) -> AsyncIterator[RawWebSocket]:
    """A raw Engine.IO v3 connection that introduces itself the way sails.io.js 1.2.1 does."""
    query.setdefault("__sails_io_sdk_version", "1.2.1")
    async with raw_websocket(url, eio_revision=3, **query) as ws:
        await ws.handshake()
        await ws.expect("40")
        yield ws


class Requester:
    """Sends virtual requests with increasing ack ids and returns the decoded ack.

    Frames that arrive before the ack (server pushes the action made) are kept in ``pushed``.
    """

    def __init__(self, ws: RawWebSocket) -> None:
        self.ws = ws
        self.next_id = 0
        self.pushed: list[str | bytes] = []

    async def __call__(self, verb: str, url: str, data: Any = None, headers: Any = None) -> Any:
        ack_id, self.next_id = self.next_id, self.next_id + 1
        envelope = {"method": verb, "headers": headers or {}, "data": data if data is not None else {}, "url": url}
        await self.ws.send(f"42{ack_id}" + orjson.dumps([verb, envelope]).decode())
        prefix = f"43{ack_id}"
        frame = await self.ws.receive()
        while isinstance(frame, str) and frame.startswith("42"):
            self.pushed.append(frame)
            frame = await self.ws.receive()
        assert isinstance(frame, str) and frame.startswith(prefix), frame
        (answer,) = orjson.loads(frame[len(prefix) :])
        return answer


def shapes_app(settings: Settings | None = None) -> App:
    """One action per response helper, as in the spec's table of JWR shapes."""
    app = App(settings)
    app.route("GET /ok", lambda req, res: res.ok())
    app.route("GET /json", lambda req, res: res.json({"a": 1}))
    app.route("GET /text", lambda req, res: res.send("plain string"))
    app.route("GET /created", lambda req, res: res.status(201).set("X-Custom", "yes").json({"created": True}))
    app.route("GET /redirect", lambda req, res: res.redirect("/somewhere"))
    app.route("GET /forbidden", lambda req, res: res.forbidden())
    app.route("GET /bad", lambda req, res: res.bad_request({"problem": "x"}))
    app.route("GET /bad-plain", lambda req, res: res.bad_request())
    app.route("GET /returned", lambda req, res: {"returned": True})

    async def boom(req: Request, res: Response) -> None:
        raise RuntimeError("boom")

    app.route("GET /boom", boom)
    app.route("GET /silent", lambda req, res: None)
    return app


async def test_each_response_helper_gives_the_jwr_sails_gives() -> None:
    async with shapes_app().lifted() as url, sails_socket(url) as ws:
        request = Requester(ws)
        assert await request("get", "/ok") == {"body": "OK", "headers": {}, "statusCode": 200}
        assert await request("get", "/json") == {"body": {"a": 1}, "headers": {}, "statusCode": 200}
        assert await request("get", "/text") == {"body": "plain string", "headers": {}, "statusCode": 200}
        assert await request("get", "/created") == {
            "body": {"created": True},
            "headers": {"X-Custom": "yes"},
            "statusCode": 201,
        }
        assert await request("get", "/redirect") == {
            "body": "Redirecting to /somewhere",
            "headers": {"location": "/somewhere", "content-type": "text/html"},
            "statusCode": 302,
        }
        assert await request("get", "/nowhere") == {"body": "Not Found", "headers": {}, "statusCode": 404}
        assert await request("get", "/forbidden") == {"body": "Forbidden", "headers": {}, "statusCode": 403}
        assert await request("get", "/bad") == {"body": {"problem": "x"}, "headers": {}, "statusCode": 400}
        assert (await request("get", "/bad-plain"))["body"] == "Bad Request"
        assert await request("get", "/returned") == {"body": {"returned": True}, "headers": {}, "statusCode": 200}


async def test_an_action_that_fails_answers_500_and_the_socket_stays() -> None:
    async with shapes_app().lifted() as url, sails_socket(url) as ws:
        request = Requester(ws)
        crashed = await request("get", "/boom")
        assert crashed["statusCode"] == 500
        assert "RuntimeError: boom" in crashed["body"] and "Traceback" in crashed["body"]  # development
        silent = await request("get", "/silent")
        assert silent["statusCode"] == 500 and "returned without sending a response" in silent["body"]
        assert (await request("get", "/ok"))["statusCode"] == 200


async def test_production_mode_never_sends_a_stack() -> None:
    async with shapes_app(production_settings()).lifted() as url, sails_socket(url) as ws:
        request = Requester(ws)
        assert await request("get", "/boom") == {"body": "Internal Server Error", "headers": {}, "statusCode": 500}


async def test_data_is_the_body_for_every_verb_and_the_query_comes_from_the_url() -> None:
    app = App()

    def echo(req: Request, res: Response) -> None:
        res.json(
            {
                "isSocket": req.is_socket,
                "method": req.method,
                "body": req.body,
                "query": req.query,
                "params": req.params,
                "allParams": req.all_params(),
                "foo": req.headers.get("x-foo"),
                "id": req.param("id"),
            }
        )

    app.route("/echo/:id", echo)
    async with app.lifted() as url, sails_socket(url) as ws:
        request = Requester(ws)
        for verb in ("get", "post", "put", "patch", "delete"):
            answer = await request(verb, "/echo/7?x=1&x=2", {"n": 5}, {"X-Foo": "bar"})
            assert answer["body"] == {
                "isSocket": True,
                "method": verb.upper(),
                "body": {"n": 5},
                "query": {"x": ["1", "2"]},
                "params": {"id": "7"},
                "allParams": {"x": ["1", "2"], "n": 5, "id": "7"},
                "foo": "bar",
                "id": "7",
            }
        async with httpx.AsyncClient() as http:
            over_http = (await http.post(url + "/echo/7?x=1", json={"n": 5}, headers={"x-foo": "bar"})).json()
        assert over_http["isSocket"] is False and over_http["body"] == {"n": 5} and over_http["query"] == {"x": "1"}


async def test_options_answers_with_the_allowed_verbs_and_no_body() -> None:
    app = App()
    app.route("GET /thing", lambda req, res: res.ok())
    app.route("POST /thing", lambda req, res: res.ok())
    async with app.lifted() as url, sails_socket(url) as ws:
        assert await Requester(ws)("options", "/thing") == {"headers": {"allow": "GET, HEAD, POST"}, "statusCode": 200}


async def test_a_request_without_an_ack_runs_and_answers_nothing() -> None:
    app = App()
    calls: list[str] = []
    app.route("POST /note", lambda req, res: (calls.append(req.body["text"]), res.ok())[1])
    app.route("GET /ok", lambda req, res: res.ok())
    async with app.lifted() as url, sails_socket(url) as ws:
        await ws.send('42["post",{"method":"post","headers":{},"data":{"text":"hi"},"url":"/note"}]')
        assert (await Requester(ws)("get", "/ok"))["statusCode"] == 200  # the next frame is this answer
    assert calls == ["hi"]


async def test_a_binary_body_is_sent_as_an_attachment() -> None:
    app = App()
    app.route("GET /blob", lambda req, res: res.json({"buf": b"\x01\x02\x03"}))
    async with app.lifted() as url, sails_socket(url) as ws:
        await ws.send('420["get",{"method":"get","headers":{},"data":{},"url":"/blob"}]')
        await ws.expect('461-0[{"body":{"buf":{"_placeholder":true,"num":0}},"headers":{},"statusCode":200}]')
        await ws.expect(b"\x04\x01\x02\x03")


PARSE_ERROR_KEYS = ["code", "name", "status", "message", "stack", "details"]


@pytest.mark.parametrize(
    ("query", "version_shown"),
    [({}, "0.9.0"), ({"__sails_io_sdk_version": "0.10.0"}, "0.10.0"), ({"__sails_io_sdk_version": "abc"}, "abc")],
    ids=["no version", "too old", "not semver"],
)
async def test_an_old_or_unreadable_sdk_version_gets_the_parse_error(query: dict[str, str], version_shown: str) -> None:
    app = shapes_app()
    async with app.lifted() as url, raw_websocket(url, eio_revision=3, **query) as ws:
        await ws.handshake()
        await ws.expect("40")
        error = await Requester(ws)("get", "/ok")
        assert list(error) == PARSE_ERROR_KEYS
        assert error["code"] == "SAILS:HOOK:SOCKETS:PARSE_VIRTUAL_REQ" and error["status"] == 400
        assert f"client SDK version you are using ({version_shown})" in error["details"]
        async with sails_socket(url) as other:  # the server is fine
            assert (await Requester(other)("get", "/ok"))["statusCode"] == 200


@pytest.mark.parametrize(
    ("envelope", "details"),
    [
        ({"method": "get", "data": {}}, "No url provided in request: [object Object]"),
        ({"url": 7}, "Invalid url provided: 7"),
        ({"url": "/ok", "data": "text"}, "Invalid data provided: expected an object, got str"),
        ({"url": "/ok", "headers": ["x"]}, "Invalid headers provided: expected an object, got list"),
        ("just a string", "Could not parse request: expected an object, got str"),
    ],
    ids=["no url", "url not a string", "data not an object", "headers not an object", "no envelope"],
)
async def test_a_malformed_envelope_gets_the_parse_error_never_a_crash(envelope: Any, details: str) -> None:
    async with shapes_app().lifted() as url, sails_socket(url) as ws:
        await ws.send("420" + orjson.dumps(["get", envelope]).decode())
        frame = await ws.receive()
        assert isinstance(frame, str) and frame.startswith("430")
        assert orjson.loads(frame[3:])[0]["details"] == details
        # without an ack the same error comes as a sails:parseError event
        await ws.send("42" + orjson.dumps(["get", envelope]).decode())
        frame = await ws.receive()
        assert isinstance(frame, str) and frame.startswith('42["sails:parseError",')
        assert (await Requester(ws)("get", "/ok"))["statusCode"] == 200


async def test_production_parse_errors_carry_no_stack() -> None:
    async with shapes_app(production_settings()).lifted() as url, raw_websocket(url, eio_revision=3) as ws:
        await ws.handshake()
        await ws.expect("40")
        error = await Requester(ws)("get", "/ok")
        assert "stack" not in error


async def test_a_plain_def_action_runs_in_a_worker_thread_and_may_use_rooms() -> None:
    app = App()
    threads: list[bool] = []

    def join(req: Request, res: Response) -> None:
        threads.append(trio.lowlevel.in_trio_run())
        sails.sockets.join(req, "lobby")
        sails.sockets.broadcast("lobby", "joined", {"id": sails.sockets.get_id(req)})
        res.ok()

    app.route("POST /join", join)
    async with app.lifted() as url, sails_socket(url) as ws:
        sid = app.sockets.get_id(next(iter(app.io.sockets.values())))
        await ws.send('420["post",{"method":"post","headers":{},"data":{},"url":"/join"}]')
        await ws.expect(f'42["joined",{{"id":"{sid}"}}]')
        await ws.expect('430[{"body":"OK","headers":{},"statusCode":200}]')
    assert threads == [False]


async def test_the_same_action_serves_http_and_sockets() -> None:
    app = App.load("examples/quickstart")
    async with app.lifted() as url, httpx.AsyncClient() as http:
        response = await http.get(url + "/say/hello")
        assert (response.status_code, response.text) == (400, "Bad Request")
        async with sails_socket(url) as ws:
            assert await Requester(ws)("get", "/say/hello") == {"body": "OK", "headers": {}, "statusCode": 200}


async def test_trisails_clients_learn_which_requests_subscribed_them() -> None:
    app = App()
    app.route("GET /join", lambda req, res: (req.socket.join("room"), res.ok())[1])  # type: ignore[union-attr]
    app.route("GET /ok", lambda req, res: res.ok())
    async with app.lifted() as url:
        async with sails_socket(url, __trisails_client="1") as ws:
            request = Requester(ws)
            assert (await request("get", "/join"))["headers"] == {"x-trisails-rejoin": "1"}
            assert (await request("get", "/ok"))["headers"] == {}
        async with sails_socket(url) as ws:  # sails.io.js sees exactly Sails' shapes
            assert (await Requester(ws)("get", "/join"))["headers"] == {}


async def test_a_body_json_cannot_hold_still_gets_an_answer() -> None:
    app = App()
    app.route("GET /odd", lambda req, res: res.json({"thing": object()}))
    app.route("GET /ok", lambda req, res: res.ok())
    async with app.lifted() as url, sails_socket(url) as ws:
        request = Requester(ws)
        answer = await request("get", "/odd")
        assert answer["statusCode"] == 500 and "cannot be sent as JSON" in answer["body"]
        assert (await request("get", "/ok"))["statusCode"] == 200


async def test_json_strings_and_headers_over_http() -> None:
    app = App()
    app.route("GET /string", lambda req, res: res.json("a string"))
    app.route("GET /moved", lambda req, res: (res.set("Location", "/old"), res.redirect("/new"))[1])
    async with app.lifted() as url, httpx.AsyncClient() as http:
        response = await http.get(url + "/string")
        assert response.headers["content-type"].startswith("application/json") and response.json() == "a string"
        response = await http.get(url + "/moved")
        assert response.status_code == 302 and response.headers.get_list("location") == ["/new"]
