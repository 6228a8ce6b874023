"""The byte relay of ``python -m trisails --reload``: the supervisor's port, and the copying of each
connection to the app's child process.

The supervisor (:mod:`trisails._reload`) decides *where* a connection goes (the child serving now, or
nowhere while none does); this module does the network part: holding the public port, opening the
connection to the child on 127.0.0.1, copying bytes both ways until either side ends, and the 503 for a
connection that has nowhere to go. The bytes are copied as they are, TLS included, so the child sees
what the client sent. Kept here so that, on the server side, only :mod:`trisails.realtime` touches the
network.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

__all__ = ["open_listeners", "relay", "serve"]

#: Bytes copied per read, each way.
CHUNK = 65536


async def open_listeners(host: str, port: int) -> tuple[list[trio.SocketListener], int]:
    """Listen on ``host:port`` (port 0: a free one); the listeners and the port they got."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    return listeners, int(listeners[0].socket.getsockname()[1])


async def serve(listeners: list[trio.SocketListener], handler: Callable[[trio.SocketStream], Awaitable[None]]) -> None:
    """Accept connections on ``listeners`` and run ``handler`` on each, until cancelled."""
    await trio.serve_listeners(handler, listeners)


async def relay(client: trio.SocketStream, port: int | None, unavailable: str) -> None:
    """Copy ``client`` to and from the app listening on 127.0.0.1:``port`` until either side ends;
    with no port, or when that app cannot be reached, answer 503 with the text ``unavailable``."""
    async with client:
        if port is None:
            await _unavailable(client, unavailable)
            return
        try:
            upstream = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError:
            await _unavailable(client, unavailable)
            return
        async with upstream, trio.open_nursery() as pumps:
            pumps.start_soon(_pump, client, upstream, pumps.cancel_scope)
            pumps.start_soon(_pump, upstream, client, pumps.cancel_scope)


async def _pump(source: trio.abc.Stream, sink: trio.abc.Stream, scope: trio.CancelScope) -> None:
    """Copy ``source`` to ``sink`` until either side ends; then end the other direction too."""
    try:
        while data := await source.receive_some(CHUNK):
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        scope.cancel()


async def _unavailable(client: trio.SocketStream, text: str) -> None:
    """A 503 with ``text`` for a connection that has nowhere to go."""
    body = text.encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    try:
        await client.send_all(head.encode() + body)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
