"""sails.io.js 1.2.1 in Node (over its own socket.io-client 2.0.3) making virtual requests to trisails.

``io.socket.get('/say/hello', cb)`` and friends, as a Sails app's front end makes them: the
documentation's quickstart, the JWR each response helper produces, what ``req`` looks like to an action,
requests made before the socket is connected, old or unreadable SDK versions, binary bodies, and
``sails.sockets`` observed by the clients it targets. What the client hands to its callback is compared
with the LIVE captures of the spec (``sails-realtime-spec.md`` §2.5, §2.9, §3, §5.1); where trisails
differs on purpose the test says so.

Old SDK versions cannot be spoken by sails.io.js 1.2.1 (it always appends its own version to the
handshake query), so those stories use a bare socket.io-client 2.0.3 emitting ``get`` like an old SDK.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from tests.compat.apps import lifted
from tests.support.jsclient import JsAckTimeout, JsDriver, JsSocket, Jwr
from tests.support.settings import production_settings
from trisails import App, Request, Response, Settings, sails

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"

#: How a bare socket.io-client 2.0.3 connects like sails.io.js does (websocket only), minus the SDK query.
WEBSOCKET = {"transports": ["websocket"]}

PARSE_ERROR_KEYS = ["code", "name", "status", "message", "stack", "details"]


def parse_error(details: str) -> dict[str, Any]:
    """The ``PARSE_VIRTUAL_REQ`` error of spec §2.9, without its ``stack`` (checked separately)."""
    return {
        "code": "SAILS:HOOK:SOCKETS:PARSE_VIRTUAL_REQ",
        "name": "Error (SAILS:HOOK:SOCKETS:PARSE_VIRTUAL_REQ):",
        "status": 400,
        "message": "Failed to parse incoming socket.io request.",
        "details": details,
    }


def old_sdk(version: str) -> str:
    """The details of the error an SDK older than 0.11.0 gets (spec §2.9, LIVE)."""
    return (
        "This version of Sails is not compatible with the socket.io/sails.io.js client SDK version you are "
        f"using ({version}). Please see https://sailsjs.com/documentation/upgrading/to-v-0-11 for more "
        "information-- then please continue upgrading all the way to the installed version of Sails."
    )


def without_stack(error: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in error.items() if key != "stack"}


def shape(jwr: Jwr) -> tuple[int | None, dict[str, Any], Any]:
    """``(statusCode, headers, body)``: a JWR as the spec's table writes it."""
    return jwr.status_code, jwr.headers, jwr.body


def failure(status: int, body: Any) -> str:
    """``jwr.error.message`` as sails.io.js builds it for a status outside 200..399."""
    return f"Server responded with a {status} status code:\n```\n{json.dumps(body, indent=2)}\n```"


# ------------------------------------------------------------------------------------------------ apps
@dataclass
class RequestApp:
    """Every response helper behind a route, an echo of ``req``, and a journal of what ran."""

    app: App
    ran: list[Any] = field(default_factory=list)


def request_app(settings: Settings | None = None) -> RequestApp:
    """``/answer/<helper>``: one action per response helper (spec §2.5); ``/user/:id`` and
    ``/answer/echo``: the request as the action sees it; ``/answer/note``: records its body and
    tells the room ``notes`` (``notes/join`` joins it)."""
    recorded = RequestApp(App(settings))
    app = recorded.app

    def answer(name: str, action: Any) -> None:
        app.action(f"answer/{name}", action)

    answer("ok", lambda req, res: res.ok())
    answer("ok_obj", lambda req, res: res.ok({"name": "joe", "pets": [1, 2]}))
    answer("json_obj", lambda req, res: res.json({"name": "joe", "pets": [1, 2]}))
    answer("json_str", lambda req, res: res.json("a string"))
    answer("send_str", lambda req, res: res.send("plain string"))
    answer("created", lambda req, res: res.status(201).set("X-Custom", "yes").json({"created": True}))
    answer("redirect", lambda req, res: res.redirect("/somewhere"))
    answer("forbidden", lambda req, res: res.forbidden())
    answer("forbidden_why", lambda req, res: res.forbidden("because"))
    answer("bad_obj", lambda req, res: res.bad_request({"problem": "x"}))
    answer("bad", lambda req, res: res.bad_request())
    answer("blob", lambda req, res: res.json({"buf": b"\x01\x02\x03", "more": [b"\xff\x00", "text"]}))
    answer("raw_bytes", lambda req, res: res.send(b"\x89PNG\r\n"))

    def server_error(req: Request, res: Response) -> None:
        try:
            raise ValueError("boom")
        except ValueError as error:
            res.server_error(error)

    async def explode(req: Request, res: Response) -> None:
        raise RuntimeError("kaboom")

    answer("server_error", server_error)
    answer("explode", explode)

    def echo(req: Request, res: Response) -> None:
        recorded.ran.append(("echo", req.method, req.url))
        res.ok(
            {
                "isSocket": req.is_socket,
                "method": req.method,
                "url": req.url,
                "path": req.path,
                "query": req.query,
                "body": req.body,
                "params": req.params,
                "allParams": req.all_params(),
                "id": req.param("id"),
                "headers": req.headers,
                "wantsJSON": req.wants_json,
            }
        )

    answer("echo", echo)
    app.route("/user/:id", echo)

    async def note(req: Request, res: Response) -> None:
        recorded.ran.append(("note", req.body))
        sails.sockets.broadcast("notes", "note", req.body, req)
        res.ok({"noted": req.body})

    app.action("answer/note", note)
    app.action("notes/join", lambda req, res: res.ok(sails.sockets.join(req, "notes")))
    return recorded


@pytest.fixture
def server() -> RequestApp:
    return request_app()


# ------------------------------------------------------------------------------------------- 1. the docs' quickstart
async def test_the_docs_example_two_tabs_say_hello_to_each_other(js: JsDriver) -> None:
    # examples/quickstart/api/controllers/say.py, the Sails docs' `say.hello`: join "funSockets", tell
    # the room who arrived, the new socket included ("to all sockets in that room (including the new
    # one)", says the Sails page), answer res.ok(). The page listens for "hello".
    app = App.load(QUICKSTART)
    async with lifted(app, js) as url:
        tab_a = await js.connect("sails", url, name="tab-a", listen=["hello"])
        tab_b = await js.connect("sails", url, name="tab-b", listen=["hello"])

        body, jwr = await tab_a.get("/say/hello")
        assert (body, shape(jwr), jwr.error) == ("OK", (200, {}, "OK"), None)
        assert await tab_a.next_event("hello") == [{"id": tab_a.id}]  # it hears its own arrival
        await tab_b.expect_no_event("hello", within=0)  # not in the room yet

        body, jwr = await tab_b.get("/say/hello")
        assert (body, jwr.status_code) == ("OK", 200)
        assert await tab_a.next_event("hello") == [{"id": tab_b.id}]
        assert await tab_b.next_event("hello") == [{"id": tab_b.id}]

        # the first tab says hello again: both hear it, once each
        await tab_a.get("/say/hello")
        assert await tab_b.next_event("hello") == [{"id": tab_a.id}]
        assert await tab_a.next_event("hello") == [{"id": tab_a.id}]
        await tab_a.expect_no_event("hello", within=0)
        await tab_b.expect_no_event("hello", within=0)

        # a plain HTTP request is not a socket: the action refuses it, as in the docs
        async with httpx.AsyncClient() as http:
            over_http = await http.get(url + "/say/hello")
        assert (over_http.status_code, over_http.text) == (400, "Bad Request")
        await tab_a.expect_no_event("hello", within=0.1)


# ------------------------------------------------------------------------------------------------ 2. JWR shapes
async def test_each_response_helper_reaches_the_callback_as_in_sails(js: JsDriver, server: RequestApp) -> None:
    # spec §2.5, LIVE table: (statusCode, headers, body) as sails.io.js hands them to the callback
    async with lifted(server.app, js) as url:
        page = await js.connect("sails", url)
        obj = {"name": "joe", "pets": [1, 2]}
        expected = {
            "/answer/ok": (200, {}, "OK"),
            "/answer/ok_obj": (200, {}, obj),
            "/answer/json_obj": (200, {}, obj),
            "/answer/send_str": (200, {}, "plain string"),
            "/answer/forbidden": (403, {}, "Forbidden"),
            "/answer/bad_obj": (400, {}, {"problem": "x"}),
            "/answer/bad": (400, {}, "Bad Request"),
            "/nowhere/at/all": (404, {}, "Not Found"),
        }
        for path, (status, headers, body) in expected.items():
            got_body, jwr = await page.get(path)
            assert got_body == body, path
            assert shape(jwr) == (status, headers, body), path
            assert jwr.error == (None if status < 400 else failure(status, body)), path


async def test_forbidden_ignores_what_it_is_given_as_in_sails(js: JsDriver, server: RequestApp) -> None:
    async with lifted(server.app, js) as url:
        page = await js.connect("sails", url)
        _, jwr = await page.get("/answer/forbidden_why")
        assert shape(jwr) == (403, {}, "Forbidden")


async def test_status_and_headers_set_before_sending_are_kept_once_each(js: JsDriver, server: RequestApp) -> None:
    async with lifted(server.app, js) as url:
        page = await js.connect("sails", url)
        # res.status(201).set("X-Custom", "yes").json({...}): Sails (LIVE) sends the header twice,
        # {"X-Custom": "yes", "x-custom": "yes"}; trisails sends it once, as it was set
        _, jwr = await page.get("/answer/created")
        assert shape(jwr) == (201, {"X-Custom": "yes"}, {"created": True})
        assert jwr.error is None


async def test_a_redirect_is_a_success_with_a_location(js: JsDriver, server: RequestApp) -> None:
    async with lifted(server.app, js) as url:
        page = await js.connect("sails", url)
        body, jwr = await page.get("/answer/redirect")
        # Sails (LIVE) also repeats the location as "Location"; trisails' header names are lower case
        assert shape(jwr) == (302, {"content-type": "text/html", "location": "/somewhere"}, "Redirecting to /somewhere")
        assert body == "Redirecting to /somewhere"
        assert jwr.error is None  # 3xx is not an error to sails.io.js, and it does not follow it


async def test_a_json_string_arrives_as_the_string_itself(js: JsDriver, server: RequestApp) -> None:
    async with lifted(server.app, js) as url:
        page = await js.connect("sails", url)
        # Sails (LIVE) double-encodes it: body '"a string"' with content-type application/json
        body, jwr = await page.get("/answer/json_str")
        assert (body, shape(jwr)) == ("a string", (200, {}, "a string"))


async def test_a_server_error_shows_the_traceback_in_development(js: JsDriver, server: RequestApp) -> None:
    async with lifted(server.app, js) as url:
        page = await js.connect("sails", url)
        body, jwr = await page.get("/answer/server_error")
        assert (jwr.status_code, jwr.headers) == (500, {})
        # Sails sends err.stack; trisails the Python traceback
        assert isinstance(body, str) and body.startswith("Traceback (most recent call last):")
        assert body.rstrip().endswith("ValueError: boom")
        assert jwr.error == failure(500, body)


async def test_an_action_that_raises_answers_500_and_the_socket_carries_on(js: JsDriver, server: RequestApp) -> None:
    async with lifted(server.app, js) as url:
        page = await js.connect("sails", url)
        before = await page.engine_state()
        body, jwr = await page.get("/answer/explode")
        assert jwr.status_code == 500
        assert "Traceback (most recent call last):" in body and body.rstrip().endswith("RuntimeError: kaboom")
        # the same connection answers the next request
        assert shape((await page.get("/answer/ok"))[1]) == (200, {}, "OK")
        after = await page.engine_state()
        assert after.connected and after.sid == before.sid == page.id


async def test_production_never_sends_a_traceback(js: JsDriver) -> None:
    production = request_app(production_settings())
    async with lifted(production.app, js) as url:
        page = await js.connect("sails", url)
        for path in ("/answer/server_error", "/answer/explode"):
            body, jwr = await page.get(path)
            assert shape(jwr) == (500, {}, "Internal Server Error"), path
            assert jwr.error == failure(500, "Internal Server Error")
        assert shape((await page.get("/answer/ok"))[1]) == (200, {}, "OK")


# ------------------------------------------------------------------------------------------------ 3. req
async def test_data_is_the_body_for_every_verb_and_the_query_comes_only_from_the_url(
    js: JsDriver, server: RequestApp
) -> None:
    async with lifted(server.app, js) as url:
        page = await js.connect("sails", url)
        for verb in ("get", "post", "put", "patch", "delete"):
            body, jwr = await page.request(
                verb, "/user/7?sort=name&tag=a&tag=b&who=query", {"name": "joe", "n": 5, "who": "body", "id": 99},
                headers={"x-foo": "bar", "X-Shout": "Loud"},
            )
            assert jwr.status_code == 200, verb
            # as in Sails (spec §5.1), the session cookie the server made for this socket at connect
            # time comes with each of its requests
            assert body["headers"].pop("cookie").startswith("sails.sid=s%3A"), verb
            assert body == {
                "isSocket": True,
                "method": verb.upper(),
                "url": "/user/7?sort=name&tag=a&tag=b&who=query",
                "path": "/user/7",
                "query": {"sort": "name", "tag": ["a", "b"], "who": "query"},
                "body": {"name": "joe", "n": 5, "who": "body", "id": 99},
                "params": {"id": "7"},
                # query, then the body over it, then the route parameters over both (spec §5.1)
                "allParams": {"sort": "name", "tag": ["a", "b"], "who": "body", "name": "joe", "n": 5, "id": "7"},
                "id": "7",
                "headers": {"x-foo": "bar", "x-shout": "Loud"},  # names lower-cased, values as sent
                "wantsJSON": True,
            }, verb


async def test_a_get_without_data_has_an_empty_body_and_an_array_is_the_body_as_is(
    js: JsDriver, server: RequestApp
) -> None:
    async with lifted(server.app, js) as url:
        page = await js.connect("sails", url)
        body, _ = await page.get("/answer/echo?limit=2")
        assert (body["method"], body["query"], body["body"]) == ("GET", {"limit": "2"}, {})
        assert body["allParams"] == {"limit": "2"}
        assert list(body["headers"]) == ["cookie"]  # only the session cookie made for this socket
        # header values that are not strings are stringified (as JavaScript would)
        body, _ = await page.get("/answer/echo", headers={"x-count": 5, "x-flag": True})
        body["headers"].pop("cookie")
        assert body["headers"] == {"x-count": "5", "x-flag": "true"}
        # a "replace" blueprint sends an array: it is the body, and allParams has nothing to merge from it
        body, _ = await page.put("/user/3", [1, 2, 3])
        assert (body["body"], body["allParams"]) == ([1, 2, 3], {"id": "3"})


async def test_the_same_action_over_http_is_not_a_socket_request(js: JsDriver, server: RequestApp) -> None:
    async with lifted(server.app, js) as url:
        page = await js.connect("sails", url)
        over_socket, _ = await page.post("/user/7?x=1", {"n": 5})
        async with httpx.AsyncClient() as http:
            over_http = (await http.post(url + "/user/7?x=1", json={"n": 5})).json()
        assert (over_socket["isSocket"], over_http["isSocket"]) == (True, False)
        for key in ("method", "query", "body", "params", "allParams"):
            assert over_socket[key] == over_http[key], key


# ------------------------------------------------------------------------------------------------ 4. queued
async def test_requests_made_before_the_socket_connects_are_answered_in_order(js: JsDriver) -> None:
    app = App()
    arrivals: list[int] = []
    session_store_ready = trio.Event()

    @app.io.use
    async def slow_session_store(socket: Any) -> None:
        await session_store_ready.wait()  # the socket is not connected until this returns

    def count(req: Request, res: Response) -> None:
        arrivals.append(req.body["n"])
        res.ok({"n": req.body["n"], "arrived": len(arrivals)})

    app.action("count", count)

    async with lifted(app, js) as url:
        # a page calls io.socket.get() at once, before the socket is connected: sails.io.js queues it
        page = await js.connect("sails", url, wait=False)
        answers: dict[int, tuple[Any, Jwr]] = {}

        async def ask(n: int) -> None:
            answers[n] = await page.request("get" if n % 2 else "post", "/count", {"n": n})

        async with trio.open_nursery() as nursery:
            for n in range(5):
                nursery.start_soon(ask, n)
                await trio.testing.wait_all_tasks_blocked()  # request n is with the client before n + 1
            state = await page.engine_state()
            assert not state.connected and arrivals == []  # all five wait in sails.io.js' queue
            session_store_ready.set()
        assert arrivals == [0, 1, 2, 3, 4]
        assert {n: body for n, (body, _) in answers.items()} == {n: {"n": n, "arrived": n + 1} for n in range(5)}
        assert all(jwr.status_code == 200 for _, jwr in answers.values())


# ------------------------------------------------------------------------------------------------ 5. versions
@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ({}, "0.9.0"),  # no version at all: Sails assumes 0.9.0
        ({"__sails_io_sdk_version": "0.10.0"}, "0.10.0"),
        ({"__sails_io_sdk_version": "abc"}, "abc"),  # crashes Sails (spec §0.11); refused here
    ],
    ids=["no-version", "0.10.0", "not-semver"],
)
async def test_an_old_or_unreadable_sdk_gets_the_parse_error_as_its_answer(
    js: JsDriver, server: RequestApp, query: dict[str, str], shown: str
) -> None:
    async with lifted(server.app, js) as url:
        old = await js.connect("v2", url, options={**WEBSOCKET, "query": query})
        old.discard("connect")
        envelope = {"method": "get", "headers": {}, "data": {}, "url": "/answer/echo"}
        [error] = await old.emit("get", envelope, ack=True)
        assert list(error) == PARSE_ERROR_KEYS
        assert without_stack(error) == parse_error(old_sdk(shown))
        assert error["stack"].startswith(
            "Error (SAILS:HOOK:SOCKETS:PARSE_VIRTUAL_REQ):: Failed to parse incoming socket.io request."
        )
        assert server.ran == []  # the action never ran

        # without a callback the error comes as an event
        await old.emit("get", envelope)
        [event] = await old.next_event("sails:parseError")
        assert without_stack(event) == parse_error(old_sdk(shown))

        # the server is fine: the old client is still connected and a current one is answered
        assert (await old.engine_state()).connected
        page = await js.connect("sails", url)
        assert shape((await page.get("/answer/ok"))[1]) == (200, {}, "OK")
        [again] = await old.emit("get", envelope, ack=True)
        assert without_stack(again) == parse_error(old_sdk(shown))
        # as in Sails, the envelope is checked before the version: no url says so
        [no_url] = await old.emit("get", {"method": "get", "data": {}}, ack=True)
        assert no_url["details"] == "No url provided in request: [object Object]"
        await old.expect_no_event()


@pytest.mark.parametrize("version", ["0.11.0", "0.11.0-rc.1", "1.2.1", "2.0.0"])
async def test_any_sdk_from_0_11_on_is_answered(js: JsDriver, server: RequestApp, version: str) -> None:
    async with lifted(server.app, js) as url:
        client = await js.connect("v2", url, options={**WEBSOCKET, "query": {"__sails_io_sdk_version": version}})
        envelope = {"method": "get", "headers": {}, "data": {"n": 1}, "url": "/answer/echo?x=1"}
        [jwr] = await client.emit("get", envelope, ack=True)
        assert list(jwr) == ["body", "headers", "statusCode"]
        assert (jwr["statusCode"], jwr["body"]["allParams"]) == (200, {"x": "1", "n": 1})


async def test_a_version_in_a_handshake_header_wins_over_the_query(js: JsDriver, server: RequestApp) -> None:
    async with lifted(server.app, js) as url:
        client = await js.connect(
            "v2",
            url,
            options={
                **WEBSOCKET,
                "query": {"__sails_io_sdk_version": "0.9.0"},
                "extraHeaders": {"__sails_io_sdk_version": "1.2.1"},
            },
        )
        [jwr] = await client.emit("get", {"url": "/answer/ok"}, ack=True)
        assert jwr == {"body": "OK", "headers": {}, "statusCode": 200}


async def test_production_parse_errors_have_no_stack(js: JsDriver) -> None:
    production = request_app(production_settings())
    async with lifted(production.app, js) as url:
        old = await js.connect("v2", url, options=WEBSOCKET)
        [error] = await old.emit("get", {"url": "/answer/ok"}, ack=True)
        assert list(error) == ["code", "name", "status", "message", "details"]
        assert error == parse_error(old_sdk("0.9.0"))


@pytest.mark.parametrize(
    ("envelope", "details"),
    [
        ({"method": "get", "headers": {}, "data": {}}, "No url provided in request: [object Object]"),
        ({"method": "get", "url": ""}, "No url provided in request: [object Object]"),
        ({"method": "get", "url": 42}, "Invalid url provided: 42"),
        # Sails passes a non-object `data` on (lodash spreads a string into {"0": ...}); trisails refuses it
        (
            {"method": "get", "url": "/answer/echo", "data": "text"},
            "Invalid data provided: expected an object, got str",
        ),
    ],
    ids=["no-url", "empty-url", "number-url", "string-data"],
)
async def test_a_broken_envelope_gets_the_parse_error_with_its_details(
    js: JsDriver, server: RequestApp, envelope: dict[str, Any], details: str
) -> None:
    # sails.io.js validates what it sends, so a broken envelope comes from its raw socket.io socket
    # (which did introduce itself as sails.io.js 1.2.1)
    async with lifted(server.app, js) as url:
        page = await js.connect("sails", url, listen=["sails:parseError"])
        [error] = await page.emit("get", envelope, ack=True)
        assert list(error) == PARSE_ERROR_KEYS
        assert without_stack(error) == parse_error(details)
        await page.emit("get", envelope)  # no callback: the event sails.io.js itself listens for
        [event] = await page.next_event("sails:parseError")
        assert without_stack(event) == parse_error(details)
        assert server.ran == []
        assert shape((await page.get("/answer/ok"))[1]) == (200, {}, "OK")


@pytest.mark.parametrize(
    ("url", "shown"),
    [({"path": "/x"}, "[object Object]"), (True, "true"), (["/a", "/b"], "/a,/b")],
    ids=["object", "bool", "array"],
)
async def test_a_url_that_is_not_a_string_is_shown_as_javascript_shows_it(
    js: JsDriver, server: RequestApp, url: Any, shown: str
) -> None:
    # Sails builds the details in JavaScript: 'Invalid url provided: ' + url (spec §2.9)
    async with lifted(server.app, js) as base:
        page = await js.connect("sails", base)
        [error] = await page.emit("get", {"method": "get", "url": url}, ack=True)
        assert error["details"] == f"Invalid url provided: {shown}"


async def test_only_lower_case_verbs_are_requests(js: JsDriver, server: RequestApp) -> None:
    # spec §2.3: any other event name, upper-case "GET" included, is silently ignored: no answer at all
    async with lifted(server.app, js) as url:
        page = await js.connect("sails", url)
        with pytest.raises(JsAckTimeout):
            await page.emit("GET", {"method": "get", "url": "/answer/echo"}, ack=True, ack_timeout=0.3)
        assert server.ran == []
        assert shape((await page.get("/answer/ok"))[1]) == (200, {}, "OK")


# ------------------------------------------------------------------------------------------------ 6. no callback
async def test_a_request_without_a_callback_runs_and_answers_nothing(js: JsDriver, server: RequestApp) -> None:
    async with lifted(server.app, js) as url:
        listener = await js.connect("sails", url, name="listener", listen=["note"])
        writer = await js.connect("sails", url, name="writer", listen=["note"])
        writer.discard("connect")
        await listener.get("/notes/join")
        await writer.get("/notes/join")
        await writer.post("/answer/note", {"text": "fire and forget"}, callback=False)
        assert await listener.next_event("note") == [{"text": "fire and forget"}]
        assert server.ran == [("note", {"text": "fire and forget"})]
        # the writer's next request gets its own answer, not a stray one for the first
        body, jwr = await writer.post("/answer/note", {"text": "with a callback"})
        assert (body, jwr.status_code) == ({"noted": {"text": "with a callback"}}, 200)
        assert await listener.next_event("note") == [{"text": "with a callback"}]
        await writer.expect_no_event()  # nothing but its answers: no event, no echo of its notes
        assert [entry[1] for entry in server.ran] == [{"text": "fire and forget"}, {"text": "with a callback"}]


# ------------------------------------------------------------------------------------------------ 7. binary
async def test_bytes_in_a_response_reach_sails_io_js_as_buffers(js: JsDriver, server: RequestApp) -> None:
    async with lifted(server.app, js) as url:
        page = await js.connect("sails", url)
        body, jwr = await page.get("/answer/blob")
        assert body == {"buf": b"\x01\x02\x03", "more": [b"\xff\x00", "text"]}
        assert shape(jwr) == (200, {}, body)
        # bytes as the whole body are a Buffer as the whole body
        body, jwr = await page.get("/answer/raw_bytes")
        assert (body, shape(jwr)) == (b"\x89PNG\r\n", (200, {}, b"\x89PNG\r\n"))
        # and a Buffer a Node app puts in its data reaches the action as bytes (and comes back as one)
        echoed, _ = await page.post("/answer/echo", {"file": b"\x00\x10\x20", "name": "x.bin"})
        assert echoed["body"] == {"file": b"\x00\x10\x20", "name": "x.bin"}


# ------------------------------------------------------------------------------------------------ 8. sails.sockets
def rooms_app() -> App:
    """Chat-room actions over ``sails.sockets``; each answers with the requester's rooms (without its id room)."""
    app = App()

    def my_rooms(req: Request) -> list[str]:
        return sorted(sails.sockets.rooms_of(req) - {sails.sockets.get_id(req)})

    def join(req: Request, res: Response) -> None:
        sails.sockets.join(req, req.param("room"))
        res.ok(my_rooms(req))

    def leave(req: Request, res: Response) -> None:
        sails.sockets.leave(req, req.param("room"))
        res.ok(my_rooms(req))

    def say(req: Request, res: Response) -> None:
        # the documented four-argument form: rooms, event, data, socket to leave out
        message = {"from": sails.sockets.get_id(req), "text": req.param("text")}
        sails.sockets.broadcast(req.param("to"), "chat", message, req)
        res.ok()

    def say3(req: Request, res: Response) -> None:
        # the documented three-argument form: rooms, data, socket to leave out (event "message")
        sails.sockets.broadcast(req.param("to"), {"text": req.param("text")}, req)
        res.ok()

    def announce(req: Request, res: Response) -> None:
        sails.sockets.broadcast(req.param("to"), "chat", {"text": req.param("text")})  # nobody left out
        res.ok()

    def shout(req: Request, res: Response) -> None:
        if req.param("event"):
            sails.sockets.blast(req.param("event"), {"text": req.param("text")}, req)
        else:
            sails.sockets.blast({"text": req.param("text")}, req)
        res.ok()

    def empty(req: Request, res: Response) -> None:
        sails.sockets.leave_all(req.param("room"))
        res.ok()

    def gather(req: Request, res: Response) -> None:
        sails.sockets.add_room_members_to_rooms(req.param("from"), req.param("into"))
        res.ok()

    for action in (join, leave, say, say3, announce, shout, empty, gather):
        app.action(f"room/{action.__name__}", action)
    app.action("room/mine", lambda req, res: res.ok(my_rooms(req)))
    return app


EVENTS = ["chat", "message", "news"]


async def people(js: JsDriver, url: str, *names: str) -> list[JsSocket]:
    """Connected sails.io.js sockets listening to ``EVENTS`` (their ``connect`` event already taken)."""
    sockets = [await js.connect("sails", url, name=name, listen=EVENTS) for name in names]
    for socket in sockets:
        socket.discard("connect")
    return sockets


async def test_sockets_join_and_leave_rooms_through_requests(js: JsDriver) -> None:
    async with lifted(rooms_app(), js) as url:
        alice, bob = await people(js, url, "alice", "bob")
        assert (await alice.post("/room/join", {"room": "lobby"}))[0] == ["lobby"]
        assert (await bob.post("/room/join", {"room": "lobby"}))[0] == ["lobby"]
        assert (await bob.post("/room/join", {"room": "kitchen"}))[0] == ["kitchen", "lobby"]

        await alice.post("/room/say", {"to": "lobby", "text": "hi all"})
        assert await bob.next_event("chat") == [{"from": alice.id, "text": "hi all"}]
        await alice.expect_no_event()  # the speaker is left out

        assert (await bob.post("/room/leave", {"room": "lobby"}))[0] == ["kitchen"]
        await alice.post("/room/say", {"to": "lobby", "text": "anyone?"})
        await bob.expect_no_event()
        await alice.expect_no_event(within=0)
        assert (await bob.get("/room/mine"))[0] == ["kitchen"]


async def test_the_three_argument_broadcast_leaves_the_requester_out_too(js: JsDriver) -> None:
    # Sails loses the omitted socket in this form and the requester hears itself (spec §3, LIVE); fixed here
    async with lifted(rooms_app(), js) as url:
        alice, bob = await people(js, url, "alice", "bob")
        for person in (alice, bob):
            await person.post("/room/join", {"room": "lobby"})
        await bob.post("/room/say3", {"to": "lobby", "text": "hi from B (3-arg form)"})
        assert await alice.next_event("message") == [{"text": "hi from B (3-arg form)"}]
        await bob.expect_no_event()


async def test_a_broadcast_without_a_socket_to_omit_reaches_the_requester_too(js: JsDriver) -> None:
    async with lifted(rooms_app(), js) as url:
        alice, bob = await people(js, url, "alice", "bob")
        for person in (alice, bob):
            await person.post("/room/join", {"room": "lobby"})
        await bob.post("/room/announce", {"to": "lobby", "text": "dinner"})
        assert await alice.next_event("chat") == [{"text": "dinner"}]
        assert await bob.next_event("chat") == [{"text": "dinner"}]


async def test_a_socket_in_two_target_rooms_gets_the_broadcast_once(js: JsDriver) -> None:
    # Sails emits per room and delivers it twice (spec §3, LIVE); trisails once
    async with lifted(rooms_app(), js) as url:
        alice, bob, carol = await people(js, url, "alice", "bob", "carol")
        await alice.post("/room/join", {"room": "red"})
        await alice.post("/room/join", {"room": "blue"})
        await bob.post("/room/join", {"room": "blue"})
        await carol.post("/room/say", {"to": ["red", "blue"], "text": "both rooms"})
        for person in (alice, bob):
            assert await person.next_event("chat") == [{"from": carol.id, "text": "both rooms"}]
        await alice.expect_no_event()
        await bob.expect_no_event(within=0)
        await carol.expect_no_event(within=0)


async def test_blast_reaches_everyone_but_the_requester_in_both_forms(js: JsDriver) -> None:
    # Sails drops the omitted socket of the two-argument blast(data, req) (spec §3); trisails keeps it
    async with lifted(rooms_app(), js) as url:
        alice, bob, carol = await people(js, url, "alice", "bob", "carol")  # in no room at all
        await bob.post("/room/shout", {"text": "two-argument blast"})
        for person in (alice, carol):
            assert await person.next_event("message") == [{"text": "two-argument blast"}]
        await bob.post("/room/shout", {"event": "news", "text": "three-argument blast"})
        for person in (alice, carol):
            assert await person.next_event("news") == [{"text": "three-argument blast"}]
        await bob.expect_no_event()
        await alice.expect_no_event(within=0)
        await carol.expect_no_event(within=0)


async def test_leave_all_empties_every_room_of_the_members_of_one(js: JsDriver) -> None:
    async with lifted(rooms_app(), js) as url:
        alice, bob, carol = await people(js, url, "alice", "bob", "carol")
        for person in (alice, bob):
            await person.post("/room/join", {"room": "party"})
            await person.post("/room/join", {"room": "kitchen"})
        await carol.post("/room/join", {"room": "kitchen"})
        await carol.post("/room/empty", {"room": "party"})
        # the party's members left all their rooms (not their own id room); carol, not a member, kept hers
        assert (await alice.get("/room/mine"))[0] == []
        assert (await bob.get("/room/mine"))[0] == []
        assert (await carol.get("/room/mine"))[0] == ["kitchen"]
        await carol.post("/room/announce", {"to": ["party", "kitchen"], "text": "still here?"})
        assert await carol.next_event("chat") == [{"text": "still here?"}]
        await alice.expect_no_event()
        await bob.expect_no_event(within=0)


async def test_members_of_a_room_or_one_socket_can_be_added_to_other_rooms(js: JsDriver) -> None:
    async with lifted(rooms_app(), js) as url:
        alice, bob, carol = await people(js, url, "alice", "bob", "carol")
        for person in (alice, bob):
            await person.post("/room/join", {"room": "team"})
        await carol.post("/room/gather", {"from": "team", "into": ["blue", "green"]})
        assert (await alice.get("/room/mine"))[0] == ["blue", "green", "team"]
        assert (await bob.get("/room/mine"))[0] == ["blue", "green", "team"]
        await carol.post("/room/say", {"to": ["blue", "green"], "text": "go team"})
        for person in (alice, bob):
            assert await person.next_event("chat") == [{"from": carol.id, "text": "go team"}]

        # a socket id is a room too: only that socket is added
        await carol.post("/room/gather", {"from": alice.id, "into": "vip"})
        assert (await alice.get("/room/mine"))[0] == ["blue", "green", "team", "vip"]
        assert (await bob.get("/room/mine"))[0] == ["blue", "green", "team"]
        await carol.post("/room/say", {"to": "vip", "text": "psst"})
        assert await alice.next_event("chat") == [{"from": carol.id, "text": "psst"}]
        await alice.expect_no_event()
        await bob.expect_no_event(within=0)
        await carol.expect_no_event(within=0)
