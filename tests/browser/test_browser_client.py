"""trisails' own browser client (``trisails/static/sails.io.js``) in a real headless Chromium.

Each test builds a small trisails app (:class:`SailsTestApp`) that serves a test page and the client
file, and answers virtual requests with handlers of its own, so these tests exercise the client alone,
not the server's router. The page loads the client with the usual Sails tag,
``<script src="/js/dependencies/sails.io.js">``, and the test drives it with ``page.evaluate``.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import trio
from quart import Response

from trisails import Ack, App, ConnectionRefused, HttpSettings, Settings, Socket, SocketSettings

from .conftest import LiveApp

CLIENT = Path(__file__).resolve().parents[2] / "trisails" / "static" / "sails.io.js"
VERBS = ("get", "post", "put", "patch", "delete")
NOT_FOUND = {"body": "Not Found", "headers": {}, "statusCode": 404}

# Helpers every test page gets, after the client's <script> tag and before the test's own script.
PAGE_HELPERS = """
window.log = [];
// Bound every promise the test waits for, so a client that never answers fails instead of hanging.
window.within = (promise, ms = 4000) => Promise.race([promise,
  new Promise((_, reject) => setTimeout(() => reject(new Error('timed out')), ms))]);
// Binary values do not survive page.evaluate: show them as {bytes: [...]}.
window.plain = (value) => {
  if (value instanceof ArrayBuffer) return {bytes: Array.from(new Uint8Array(value))};
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
};
// What a request callback received, made JSON-friendly.
window.describe = (body, jwr) => ({
  body: body instanceof Error ? {error: body.message} : plain(body),
  statusCode: jwr.statusCode, headers: jwr.headers,
  error: jwr.error ? jwr.error.message : null,
  isJWR: jwr instanceof io.JWR,
});
// Start a callback-style request and resolve with what its callback received.
window.viaCallback = (start) => within(new Promise((resolve) => start((body, jwr) => resolve(describe(body, jwr)))));
// Settle a promise-style request: {resolved: body} or {rejected: message, statusCode, body}.
window.outcome = (promise) => within(promise).then(
  (body) => ({resolved: plain(body)}),
  (error) => ({rejected: error.message, statusCode: error.jwr && error.jwr.statusCode,
               body: error.jwr && plain(error.jwr.body)}));
window.connected = (socket) => socket.isConnected();
"""

Route = Callable[[Socket, dict[str, Any]], Any]


def jwr(body: Any, status: int = 200, **headers: str) -> dict[str, Any]:
    return {"body": body, "headers": headers, "statusCode": status}


class SailsTestApp:
    """A trisails app that answers virtual requests like a Sails router would, from a table of routes.

    ``routes[(method, path)](socket, request)`` returns the JWR dict (sync or async). Every request is
    recorded in ``requests`` as ``(socket id, the request object as received)``, every socket in
    ``sockets`` (in connection order) and every disconnect reason in ``gone``.
    """

    def __init__(self, **sockets: Any) -> None:
        # A short graceful timeout: the browser keeps HTTP connections open, and lowering the app waits
        # that long for them.
        self.app = App(Settings(sockets=SocketSettings(**sockets), http=HttpSettings(graceful_timeout=0.1)))
        self.routes: dict[tuple[str, str], Route] = {}
        self.pages: dict[str, str] = {}
        self.requests: list[tuple[str, Any]] = []
        self.sockets: list[Socket] = []
        self.gone: dict[str, str] = {}
        self.app.http.route("/p/<name>")(self._page)
        # trisails serves its client at this path too; the tests serve the file themselves so that they
        # depend on nothing but the file.
        self.app.http.route("/js/dependencies/sails.io.js")(self._client)
        self.app.io.on("connection", self._connected)

    def route(self, method: str, path: str) -> Callable[[Route], Route]:
        def register(fn: Route) -> Route:
            self.routes[(method, path)] = fn
            return fn

        return register

    def page(self, name: str, script: str = "", attributes: str = "", before: str = "") -> None:
        """A page that runs ``before``, loads the client (with ``attributes`` on its tag), then runs ``script``."""
        self.pages[name] = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<script>{before}</script>"
            f"<script src='/js/dependencies/sails.io.js' {attributes}></script>"
            f"<script>{PAGE_HELPERS}\n{script}</script></head><body></body></html>"
        )

    async def _page(self, name: str) -> Response:
        return Response(self.pages[name], mimetype="text/html")

    async def _client(self) -> Response:
        return Response(CLIENT.read_text(), mimetype="application/javascript")

    def _connected(self, socket: Socket) -> None:
        self.sockets.append(socket)
        # The App answers virtual requests with its router; these tests answer them with their own
        # routes, through the same public hook (a second on_events replaces the App's).
        socket.on_events(VERBS, partial(self._hooked, socket))
        socket.on("disconnect", lambda reason: self.gone.__setitem__(socket.id, reason))

    async def _hooked(self, socket: Socket, verb: str, args: list[Any], ack: Ack | None) -> None:
        answer = await self._virtual(socket, *args[:1])
        if ack is not None:
            ack(answer)

    async def _virtual(self, socket: Socket, request: Any = None) -> Any:
        self.requests.append((socket.id, request))
        route = self.routes.get((request["method"], request["url"].split("?")[0]))
        if route is None:
            return NOT_FOUND
        result = route(socket, request)
        return await result if inspect.isawaitable(result) else result

    def urls(self, socket: Socket | None = None) -> list[str]:
        """The URLs requested (by one socket, or by all), in order."""
        return [r["url"] for sid, r in self.requests if socket is None or sid == socket.id]


def open_page(page: Any, live: LiveApp, name: str = "main") -> None:
    page.goto(f"{live.url}/p/{name}")


def wait_connected(page: Any, socket: str = "io.socket") -> None:
    page.wait_for_function(f"() => {socket} && {socket}.isConnected()")


# ------------------------------------------------------------------------------------------------ tests


def test_io_socket_connects_by_itself_and_answers_by_callback_and_by_promise(page: Any) -> None:
    server = SailsTestApp()
    server.route("get", "/hello")(lambda socket, request: jwr({"hello": "world"}, 200, **{"x-a": "b"}))
    server.route("post", "/echo")(lambda socket, request: jwr(request, 201))
    server.page("main")
    with LiveApp(server.app) as live:
        open_page(page, live)
        assert page.evaluate("() => viaCallback((cb) => io.socket.get('/hello', cb))") == {
            "body": {"hello": "world"},
            "statusCode": 200,
            "headers": {"x-a": "b"},
            "error": None,
            "isJWR": True,
        }
        assert page.evaluate("() => outcome(io.socket.get('/hello'))") == {"resolved": {"hello": "world"}}
        echoed = page.evaluate(
            "() => outcome(io.socket.request({method: 'POST', url: '/echo?x=1', data: {n: 1}, headers: {'x-h': 'v'}}))"
        )
        jwr_text = page.evaluate(
            "() => new Promise((resolve) => io.socket.get('/hello', (body, jwr) => resolve([String(jwr), jwr.toPOJO()])))"
        )
        socket = server.sockets[0]
        transport = live.call(lambda: socket.statistics()["transport"])

    # The wire format of sails.io.js, key order included.
    first = server.requests[0][1]
    assert first == {"method": "get", "headers": {}, "data": {}, "url": "/hello"}
    assert list(first) == ["method", "headers", "data", "url"]
    assert echoed == {"resolved": {"method": "post", "headers": {"x-h": "v"}, "data": {"n": 1}, "url": "/echo?x=1"}}
    assert jwr_text[0].startswith("[ResponseFromSails]") and '"hello"' in jwr_text[0]
    assert jwr_text[1] == {"body": {"hello": "world"}, "headers": {"x-a": "b"}, "statusCode": 200}
    query = socket.handshake.query
    assert {k: query.get(k) for k in ("__sails_io_sdk_version", "__sails_io_sdk_platform", "__sails_io_sdk_language")} == {
        "__sails_io_sdk_version": "1.2.1",
        "__sails_io_sdk_platform": "browser",
        "__sails_io_sdk_language": "javascript",
    }
    assert query.get("__trisails_client") == "1" and query.get("EIO") == "4"
    assert transport == "websocket"


def test_requests_made_before_the_socket_connects_are_queued_and_sent_in_order(page: Any) -> None:
    server = SailsTestApp()
    server.route("post", "/count")(lambda socket, request: jwr(request["data"]))
    server.route("put", "/count")(lambda socket, request: jwr(request["data"]))
    server.page(
        "main",
        """
        // This runs before the client's first tick: nothing is connected yet.
        window.early = {connected: io.socket.isConnected(), connecting: io.socket.isConnecting(),
                        might: io.socket.mightBeAboutToAutoConnect(), reconnection: io.sails.reconnection,
                        delays: [io.sails.reconnectionDelay, io.sails.reconnectionDelayMax, io.sails.randomizationFactor],
                        transports: io.sails.transports, path: io.sails.path};
        window.answers = [];
        for (const n of [1, 2, 3]) io.socket.post('/count', {n}, (body) => answers.push(body.n));
        window.last = io.socket.put('/count', {n: 4});
        """,
    )
    with LiveApp(server.app) as live:
        open_page(page, live)
        assert page.evaluate("() => outcome(last)") == {"resolved": {"n": 4}}
        assert page.evaluate("() => answers") == [1, 2, 3]
        assert page.evaluate("() => [io.socket.mightBeAboutToAutoConnect(), io.socket.isConnected()]") == [False, True]
        early = page.evaluate("() => early")
    assert early == {
        "connected": False,
        "connecting": False,
        "might": True,
        "reconnection": True,
        "delays": [1000, 10000, 0.5],
        "transports": ["websocket"],
        "path": "/socket.io",
    }
    assert [(r["method"], r["data"]["n"]) for _, r in server.requests] == [("post", 1), ("post", 2), ("post", 3), ("put", 4)]


def test_server_events_reach_listeners_added_before_and_after_connecting(page: Any) -> None:
    server = SailsTestApp()
    server.page(
        "main",
        """
        window.onChat = (message) => log.push(['chat', message]);
        io.socket.on('chat', onChat);                         // before the socket connects
        io.socket.on('ask', (question, ack) => ack(question * 2, 'doubled'));
        """,
    )
    with LiveApp(server.app) as live:
        open_page(page, live)
        wait_connected(page)
        socket = server.sockets[0]
        live.call(socket.emit, "chat", {"text": "hi"}, 2)
        page.wait_for_function("() => log.length === 1")
        page.evaluate("() => io.socket.on('late', (x) => log.push(['late', x]))")
        live.call(socket.emit, "late", [1, None])
        page.wait_for_function("() => log.length === 2")
        answer = live.run(socket.call, "ask", 21)
        page.evaluate("() => io.socket.off('chat', onChat)")
        live.call(socket.emit, "chat", "ignored")
        live.call(socket.emit, "late", "last")
        page.wait_for_function("() => log.length === 3")
        assert page.evaluate("() => log") == [["chat", {"text": "hi"}], ["late", [1, None]], ["late", "last"]]
        page.evaluate("() => io.socket.removeAllListeners()")
        live.call(socket.emit, "late", "after removeAllListeners")
        time.sleep(0.2)
        assert page.evaluate("() => log.length") == 3
    assert answer == [42, "doubled"]


def test_binary_data_goes_both_ways(page: Any) -> None:
    server = SailsTestApp()

    @server.route("post", "/upload")
    def upload(socket: Socket, request: dict[str, Any]) -> dict[str, Any]:
        data = request["data"]
        return jwr({"name": data["name"], "reversed": data["file"][::-1], "raw": data["raw"], "sizes": [len(data["file"])]})

    server.page("main")
    with LiveApp(server.app) as live:
        open_page(page, live)
        answer = page.evaluate(
            """() => outcome(io.socket.post('/upload', {name: 'a.bin', file: new Uint8Array([1, 2, 3, 255]),
                                                           raw: new Uint8Array([9, 8]).buffer}))"""
        )
        page.evaluate("() => io.socket.on('blob', (meta, data) => log.push([meta, plain(data)]))")
        live.call(server.sockets[0].emit, "blob", {"n": 1}, b"\x00\xfe")
        page.wait_for_function("() => log.length === 1")
        assert page.evaluate("() => log") == [[{"n": 1}, {"bytes": [0, 254]}]]
    assert answer == {
        "resolved": {"name": "a.bin", "reversed": {"bytes": [255, 3, 2, 1]}, "raw": {"bytes": [9, 8]}, "sizes": [4]}
    }
    assert server.requests[0][1]["data"]["file"] == b"\x01\x02\x03\xff"


def test_error_statuses_give_jwr_errors_and_rejected_promises(page: Any) -> None:
    server = SailsTestApp()
    server.route("get", "/boom")(lambda socket, request: jwr("Internal Server Error", 500))
    server.route("get", "/moved")(lambda socket, request: jwr("Redirecting to /x", 302, location="/x"))
    server.route("get", "/nostatus")(lambda socket, request: {"body": "no status"})
    server.route("get", "/unparsable")(
        lambda socket, request: {
            "code": "SAILS:HOOK:SOCKETS:PARSE_VIRTUAL_REQ",
            "name": "Error (SAILS:HOOK:SOCKETS:PARSE_VIRTUAL_REQ):",
            "status": 400,
            "message": "Failed to parse incoming socket.io request.",
            "details": "Invalid url provided: x",
        }
    )
    server.page("main")
    with LiveApp(server.app) as live:
        open_page(page, live)
        missing = page.evaluate("() => viaCallback((cb) => io.socket.get('/missing', cb))")
        boom = page.evaluate("() => outcome(io.socket.get('/boom'))")
        moved = page.evaluate("() => viaCallback((cb) => io.socket.get('/moved', cb))")
        no_status = page.evaluate("() => viaCallback((cb) => io.socket.get('/nostatus', cb))")
        unparsable = page.evaluate("() => viaCallback((cb) => io.socket.get('/unparsable', cb))")
        unparsable_promise = page.evaluate("() => outcome(io.socket.get('/unparsable'))")
        # A promise nobody looks at rejects quietly (the page fixture fails on unhandled errors).
        page.evaluate("() => { io.socket.get('/missing'); return within(io.socket.get('/moved')); }")
    assert missing == {
        "body": "Not Found",
        "statusCode": 404,
        "headers": {},
        "error": 'Server responded with a 404 status code:\n```\n"Not Found"\n```',
        "isJWR": True,
    }
    assert boom == {
        "rejected": 'Server responded with a 500 status code:\n```\n"Internal Server Error"\n```',
        "statusCode": 500,
        "body": "Internal Server Error",
    }
    assert moved["statusCode"] == 302 and moved["error"] is None
    assert no_status["statusCode"] == 200 and no_status["error"] is None and no_status["body"] == "no status"
    assert unparsable["statusCode"] == 400
    assert unparsable["error"] == "Failed to parse incoming socket.io request.\nInvalid url provided: x"
    assert unparsable_promise["rejected"] == unparsable["error"]


def test_invalid_requests_throw_at_once(page: Any) -> None:
    server = SailsTestApp()
    server.page("main")
    with LiveApp(server.app) as live:
        open_page(page, live)
        thrown = page.evaluate(
            """() => {
              const attempts = {
                noUrl: () => io.socket.get(),
                urlNotString: () => io.socket.request({url: 5}),
                badCallback: () => io.socket.request({url: '/x'}, 'not a function'),
                badMethod: () => io.socket.request({url: '/x', method: 5}),
                badHeaders: () => io.socket.request({url: '/x', headers: 'x-a: b'}),
                badData: () => io.socket.post('/x', 'a string'),
                dataAndParams: () => io.socket.request({url: '/x', data: {a: 1}, params: {b: 2}}),
              };
              return Object.fromEntries(Object.entries(attempts).map(([name, attempt]) => {
                try { attempt(); return [name, null]; } catch (error) { return [name, error.message]; }
              }));
            }"""
        )
        wait_connected(page)
    assert all(thrown.values()), thrown
    assert server.requests == []


def test_a_server_disconnect_fails_pending_requests_and_is_not_followed_by_a_reconnection(page: Any) -> None:
    server = SailsTestApp()

    @server.route("get", "/kick")
    async def kick(socket: Socket, request: dict[str, Any]) -> None:
        # Wait until the client's next request has arrived too, waiting behind this one in the socket's
        # inbox (a packet that came after the disconnect would be a protocol error, as in socket.io),
        # then send 41: neither is answered. Bounded: nothing announces an arrival.
        with trio.fail_after(5):
            while not socket._inbox:
                await trio.sleep(0.01)
        socket.disconnect()

    server.route("get", "/hello")(lambda socket, request: jwr("hello"))
    server.page(
        "main",
        """
        io.sails.reconnectionDelay = 20;     // a reconnection, if one wrongly happened, would be quick
        io.socket.on('disconnect', (reason) => log.push('disconnect: ' + reason));
        io.socket.on('connect', () => log.push('connect'));
        """,
    )
    with LiveApp(server.app) as live:
        open_page(page, live)
        kicked = page.evaluate(
            """() => Promise.all([viaCallback((cb) => io.socket.get('/kick', cb)), outcome(io.socket.get('/hello'))])"""
        )
        time.sleep(0.5)
        assert page.evaluate("() => [log, io.socket.isConnected(), io.socket.isConnecting()]") == [
            ["connect", "disconnect: io server disconnect"],
            False,
            False,
        ]
        assert len(server.sockets) == 1
        # Requests wait for the next connection, which only reconnect() makes.
        page.evaluate("() => { window.queued = io.socket.get('/hello'); io.socket.reconnect(); }")
        assert page.evaluate("() => outcome(queued)") == {"resolved": "hello"}
        assert len(server.sockets) == 2
    assert kicked == [
        {
            "body": {"error": "The socket disconnected before the request completed."},
            "statusCode": 0,
            "headers": {},
            "error": None,
            "isJWR": False,
        },
        {"rejected": "The socket disconnected before the request completed.", "statusCode": 0, "body": None},
    ]
    assert server.gone[server.sockets[0].id] == "server namespace disconnect"


def join_routes(server: SailsTestApp) -> None:
    """``POST /room/join`` joins ``data.room`` and says so with the rejoin header; ``GET /plain`` does not."""

    @server.route("post", "/room/join")
    def join(socket: Socket, request: dict[str, Any]) -> dict[str, Any]:
        socket.join(request["data"]["room"])
        marked = socket.handshake.query.get("__trisails_client") == "1"
        return jwr({"joined": request["data"]["room"]}, **({"x-trisails-rejoin": "1"} if marked else {}))

    server.route("get", "/plain")(lambda socket, request: jwr("plain"))
    server.route("get", "/after")(lambda socket, request: jwr("after"))


def test_after_a_lost_connection_the_client_reconnects_and_repeats_the_requests_that_joined_rooms(page: Any) -> None:
    server = SailsTestApp()
    join_routes(server)
    server.page(
        "main",
        """
        io.sails.reconnectionDelay = 100;
        io.sails.reconnectionDelayMax = 300;
        for (const name of ['connect', 'disconnect', 'reconnecting', 'reconnect']) {
          io.socket.on(name, (arg) => log.push(name + (arg === undefined ? '' : ': ' + arg)));
        }
        io.socket.on('news', (n) => log.push('news: ' + n));
        // A request made while the connection is down waits for it, and goes after the repeats.
        io.socket.on('disconnect', () => { window.after = io.socket.get('/after'); });
        """,
    )
    with LiveApp(server.app) as live:
        open_page(page, live)
        joined = page.evaluate(
            """() => Promise.all([
                 outcome(io.socket.post('/room/join', {room: 'lobby'})),
                 viaCallback((cb) => io.socket.post('/room/join', {room: 'kitchen'}, cb)),
                 outcome(io.socket.post('/room/join', {room: 'lobby'})),      // the same request again
                 outcome(io.socket.get('/plain')),
               ])"""
        )
        assert joined[1]["headers"] == {"x-trisails-rejoin": "1"}
        first = server.sockets[0]

        live.restart(down_for=0.3)  # the server goes away: websockets close with 1001, no 41

        socket = LiveApp.wait_until(lambda: len(server.sockets) == 2 and server.sockets[1], "a reconnection")
        assert page.evaluate("() => outcome(after)") == {"resolved": "after"}
        assert live.call(lambda: {"lobby", "kitchen"} <= socket.rooms)
        live.call(lambda: server.app.io.to("lobby").emit("news", 1))
        page.wait_for_function("() => log.includes('news: 1')")
        events = page.evaluate("() => log")

    assert server.urls(first) == ["/room/join", "/room/join", "/room/join", "/plain"]
    repeated = [(r["url"], r["data"], r["headers"]) for sid, r in server.requests if sid == socket.id]
    assert repeated == [  # the repeated lobby request moved to the end, where it was last made
        ("/room/join", {"room": "kitchen"}, {}),
        ("/room/join", {"room": "lobby"}, {}),
        ("/after", {}, {}),
    ]
    assert server.gone[first.id] == "server shutting down"
    assert events[:3] == ["connect", "disconnect: transport close", "reconnecting: 1"]
    reconnecting = [e for e in events if e.startswith("reconnecting")]
    assert events[-3:] == ["connect", f"reconnect: {len(reconnecting)}", "news: 1"]


def test_with_reconnection_off_the_socket_stays_down_until_reconnect_is_called(page: Any) -> None:
    server = SailsTestApp()
    join_routes(server)
    server.page(
        "main",
        "io.socket.on('disconnect', (reason) => log.push(reason));",
        attributes="reconnection='false'",
    )
    with LiveApp(server.app) as live:
        open_page(page, live)
        assert page.evaluate("() => outcome(io.socket.post('/room/join', {room: 'r'}))") == {"resolved": {"joined": "r"}}
        live.restart()
        page.wait_for_function("() => log.length === 1")
        time.sleep(0.5)
        assert page.evaluate("() => [io.sails.reconnection, io.socket.isConnected(), io.socket.isConnecting()]") == [
            False,
            False,
            False,
        ]
        assert len(server.sockets) == 1
        page.evaluate("() => io.socket.reconnect()")
        wait_connected(page)
        socket = LiveApp.wait_until(lambda: len(server.sockets) == 2 and server.sockets[1], "the new socket")
        # Even a reconnection asked for by hand gets its rooms back.
        LiveApp.wait_until(lambda: server.urls(socket) == ["/room/join"], "the repeated join")
        assert live.call(lambda: "r" in socket.rooms)
        assert page.evaluate("() => log") == ["transport close"]


def test_disconnect_and_reconnect_by_the_page(page: Any) -> None:
    server = SailsTestApp()
    server.route("get", "/hello")(lambda socket, request: jwr("hello"))
    server.page("main", "io.socket.on('disconnect', (reason) => log.push(reason));")
    with LiveApp(server.app) as live:
        open_page(page, live)
        wait_connected(page)
        page.evaluate("() => io.socket.disconnect()")
        first = server.sockets[0]
        LiveApp.wait_until(lambda: first.id in server.gone, "the server to see the disconnect")
        errors = page.evaluate(
            """() => {
              const errors = [];
              try { io.socket.disconnect(); } catch (error) { errors.push('disconnect'); }
              io.socket.reconnect();
              try { io.socket.reconnect(); } catch (error) { errors.push('reconnect'); }
              return errors;
            }"""
        )
        wait_connected(page)
        assert page.evaluate("() => outcome(io.socket.get('/hello'))") == {"resolved": "hello"}
        assert page.evaluate("() => log") == ["io client disconnect"]
    assert server.gone[first.id] == "client namespace disconnect"
    assert errors == ["disconnect", "reconnect"]


def test_the_client_answers_heartbeats(page: Any) -> None:
    # The server pings every 200 ms and drops a client that has not answered a ping within a second.
    server = SailsTestApp(ping_interval=200, ping_timeout=1000)
    server.route("get", "/hello")(lambda socket, request: jwr("hello"))
    server.page("main", "io.socket.on('disconnect', (reason) => log.push(reason));")
    with LiveApp(server.app) as live:
        open_page(page, live)
        wait_connected(page)
        time.sleep(2.0)  # ten pings; without answers the server would have dropped the client
        assert server.gone == {}
        assert page.evaluate("() => outcome(io.socket.get('/hello'))") == {"resolved": "hello"}
        assert page.evaluate("() => log") == []


# Installed before the client loads: while `deaf` is true, the page's websockets hear nothing, not even
# their own closing, as over a connection that died without a word (a half-open TCP connection).
DEAF_WEBSOCKETS = """
window.deaf = false;
window.WebSocket = class extends WebSocket {
  set onmessage(fn) { super.onmessage = fn && ((event) => { if (!deaf) fn(event); }); }
  set onclose(fn) { super.onclose = fn && ((event) => { if (!deaf) fn(event); }); }
  set onerror(fn) { super.onerror = fn && ((event) => { if (!deaf) fn(event); }); }
};
"""


def test_a_silent_connection_is_declared_dead_and_replaced(page: Any) -> None:
    server = SailsTestApp(ping_interval=200, ping_timeout=400)
    server.route("get", "/hello")(lambda socket, request: jwr("hello"))
    server.page(
        "main",
        """
        io.sails.reconnectionDelay = 50;
        io.socket.on('disconnect', (reason) => log.push(reason));
        io.socket.on('reconnect', () => log.push('reconnect'));
        """,
        before=DEAF_WEBSOCKETS,
    )
    with LiveApp(server.app) as live:
        open_page(page, live)
        wait_connected(page)
        page.evaluate("() => { deaf = true; }")
        # Nothing for pingInterval + pingTimeout (600 ms): the client gives up on the connection.
        page.wait_for_function("() => log.length === 1")
        page.evaluate("() => { deaf = false; }")
        page.wait_for_function("() => log.length === 2")
        assert page.evaluate("() => log") == ["ping timeout", "reconnect"]
        assert page.evaluate("() => outcome(io.socket.get('/hello'))") == {"resolved": "hello"}
        assert len(server.sockets) == 2


def test_long_polling_is_the_fallback_when_the_websocket_fails(page: Any) -> None:
    server = SailsTestApp(transports=("polling",))  # the server refuses websockets

    @server.route("post", "/upload")
    def upload(socket: Socket, request: dict[str, Any]) -> dict[str, Any]:
        return jwr({"reversed": request["data"]["file"][::-1]})

    server.page("main", attributes="""data-transports='["websocket", "polling"]'""")
    with LiveApp(server.app) as live:
        open_page(page, live)
        answer = page.evaluate("() => outcome(io.socket.post('/upload', {file: new Uint8Array([1, 2])}))")
        socket = server.sockets[0]
        assert live.call(lambda: socket.statistics()["transport"]) == "polling"
        page.evaluate("() => io.socket.on('blob', (data) => log.push(plain(data)))")
        live.call(socket.emit, "blob", b"\x07")
        live.call(socket.emit, "blob", "text")
        page.wait_for_function("() => log.length === 2")
        assert page.evaluate("() => log") == [{"bytes": [7]}, "text"]
        page.evaluate("() => io.socket.disconnect()")
        LiveApp.wait_until(lambda: socket.id in server.gone, "the server to see the disconnect")
    assert answer == {"resolved": {"reversed": {"bytes": [2, 1]}}}
    assert server.gone[socket.id] == "client namespace disconnect"


def test_script_tag_options_autoconnect_off_and_io_sails_connect(page: Any) -> None:
    server = SailsTestApp()
    server.route("get", "/hello")(lambda socket, request: jwr(request["headers"]))
    server.page(
        "main",
        """
        io.sails.query = 'token=abc';
        io.sails.initialConnectionHeaders = {cookie: 'x=1'};
        """,
        attributes="""autoConnect="false" data-headers='{"x-team": "blue"}' environment="development"
                      data-environment="production" """,
    )
    with LiveApp(server.app) as live:
        open_page(page, live)
        page.wait_for_function("() => io.socket === undefined")  # autoConnect off: no eager socket
        assert page.evaluate("() => [io.sails.autoConnect, io.sails.environment, io.sails.headers]") == [
            False,
            "production",
            {"x-team": "blue"},
        ]
        headers = page.evaluate(
            """() => {
              window.one = io.sails.connect();
              window.two = io.sails.connect({headers: {'x-team': 'green'}});
              return Promise.all([outcome(one.get('/hello')),
                                  outcome(one.request({url: '/hello', headers: {'x-team': 'red', 'x-more': '1'}})),
                                  outcome(two.get('/hello'))]);
            }"""
        )
        assert len(server.sockets) == 2
    assert headers == [
        {"resolved": {"x-team": "blue"}},
        {"resolved": {"x-team": "red", "x-more": "1"}},
        {"resolved": {"x-team": "green"}},
    ]
    assert server.sockets[0].handshake.query.get("token") == "abc"
    console = [message.text for message in page.console_messages()]
    assert any("initialConnectionHeaders" in text for text in console)
    assert not any(text.startswith("sails.io.js: connected") for text in console)  # production is quiet


def test_a_refused_connection_is_an_error_and_is_not_retried(page: Any) -> None:
    server = SailsTestApp()

    @server.app.io.use
    def refuse(socket: Socket) -> None:
        raise ConnectionRefused("Not authorized", {"hint": "log in"})

    server.page(
        "main",
        """
        io.sails.reconnectionDelay = 20;
        io.socket.on('error', (error) => log.push([error.message, error.data]));
        window.pending = io.socket.get('/hello');
        """,
    )
    with LiveApp(server.app) as live:
        open_page(page, live)
        page.wait_for_function("() => log.length === 1")
        time.sleep(0.3)
        assert page.evaluate("() => [log, io.socket.isConnected(), io.socket.isConnecting()]") == [
            [["Not authorized", {"hint": "log in"}]],
            False,
            False,
        ]
    assert server.sockets == []


def test_a_cross_origin_page_fetches_the_session_cookie_route_first(page: Any) -> None:
    server = SailsTestApp()
    server.route("get", "/hello")(lambda socket, request: jwr("hello"))
    hits: list[str] = []

    @server.app.http.route("/__getcookie")
    async def getcookie() -> Response:
        hits.append("hit")
        return Response("_sailsIoJSConnect();", mimetype="application/javascript")

    with LiveApp(server.app) as live:
        other_origin = live.url.replace("127.0.0.1", "localhost")
        server.page("main", f"io.sails.url = {other_origin!r};")
        open_page(page, live)
        assert page.evaluate("() => outcome(io.socket.get('/hello'))") == {"resolved": "hello"}
    assert hits == ["hit"]
    assert server.sockets[0].handshake.headers.get("host", "").startswith("localhost")
