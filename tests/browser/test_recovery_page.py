"""A page on the trisails browser client, against a server with ``sockets.recovery``, in headless Chromium.

The server drops the page's connection (as a network blip would) and broadcasts while it is away. The
page comes back as the same socket, still in its rooms, and hears what it missed, after ``connect``
and a ``reconnect`` that says ``{recovered: true}``. A page that comes back too late is told
``{recovered: false}`` and hears, through ``rejoin``, the fresh answers of the requests that were
repeated to join its rooms again, so it can refresh what it shows.
"""

from __future__ import annotations

from typing import Any

from .conftest import LiveApp
from .test_browser_client import SailsTestApp, join_routes, open_page, wait_connected

LOGGING_PAGE = """
io.sails.reconnectionDelay = %d;
io.sails.reconnectionDelayMax = %d;
io.socket.on('connect', () => log.push('connect'));
io.socket.on('disconnect', (reason) => log.push('disconnect: ' + reason));
io.socket.on('reconnect', (attempts, how) => log.push('reconnect: ' + JSON.stringify(how)));
io.socket.on('news', (...args) => log.push('news: ' + JSON.stringify(args)));
io.socket.on('rejoin', (body, jwr, request) => log.push('rejoin: ' + request.url + ' ' + JSON.stringify(body)));
"""


def in_the_lobby(page: Any, live: LiveApp, server: SailsTestApp) -> None:
    """The page opens, joins the lobby, and hears a first broadcast there."""
    open_page(page, live)
    wait_connected(page)
    page.evaluate("() => outcome(io.socket.post('/room/join', {room: 'lobby'}))")
    live.call(lambda: server.app.io.to("lobby").emit("news", "before"))
    page.wait_for_function("() => log.includes('news: [\"before\"]')")


def lose_connection(live: LiveApp, server: SailsTestApp) -> Any:
    """The server drops the page's transport; returns once it has seen the socket go."""
    socket = server.sockets[-1]
    live.call(lambda: socket._connection.session.close("transport close", flush=False))
    LiveApp.wait_until(lambda: not socket.connected, "the server to see the socket go")
    return socket


def test_a_page_that_missed_broadcasts_during_a_disconnect_gets_them_when_it_reconnects(page: Any) -> None:
    server = SailsTestApp(recovery=True)
    join_routes(server)
    server.page("main", LOGGING_PAGE % (100, 200))
    with LiveApp(server.app) as live:
        in_the_lobby(page, live, server)
        first = lose_connection(live, server)
        live.call(lambda: server.app.io.to("lobby").emit("news", "missed", 1))
        live.call(lambda: server.app.io.to("kitchen").emit("news", "not for this page"))
        live.call(lambda: server.app.io.emit("news", "missed", 2))

        page.wait_for_function("() => log.includes('news: [\"missed\",2]')")
        events = page.evaluate("() => log")
        recovered = page.evaluate("() => io.socket.recovered")
        again = server.sockets[-1]
        rooms = live.call(lambda: again.rooms)

    assert events == [
        "connect",
        'news: ["before"]',
        "disconnect: transport close",
        "connect",
        'reconnect: {"recovered":true}',
        'news: ["missed",1]',
        'news: ["missed",2]',
    ]
    assert recovered is True
    assert again.id == first.id and again.recovered and rooms == {first.id, "lobby"}
    assert server.urls(again) == ["/room/join"]  # the join was not repeated: the socket never left the lobby


def test_a_page_that_comes_back_too_late_is_told_and_hears_the_repeated_requests_answers(page: Any) -> None:
    server = SailsTestApp(recovery=True, recovery_max_disconnection=50)
    join_routes(server)
    server.page("main", LOGGING_PAGE % (400, 400))
    with LiveApp(server.app) as live:
        in_the_lobby(page, live, server)
        first = lose_connection(live, server)
        live.call(lambda: server.app.io.to("lobby").emit("news", "missed"))
        page.wait_for_function("() => log.some((line) => line.startsWith('rejoin'))")
        events = page.evaluate("() => log")
        again = server.sockets[-1]
        rooms = live.call(lambda: again.rooms)

    assert events[-3:] == ["connect", 'reconnect: {"recovered":false}', 'rejoin: /room/join {"joined":"lobby"}']
    assert again.id != first.id and not again.recovered and rooms == {again.id, "lobby"}
