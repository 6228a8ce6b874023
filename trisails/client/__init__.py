"""A trio client for Sails and trisails servers, with the sails.io.js surface in Python.

For devices, bots, game clients and tests::

    import trisails.client

    async with trisails.client.connect("http://127.0.0.1:1337") as io:
        io.on("chat", lambda message: print(message))
        body, jwr = await io.post("/chat/join", {"room": "lobby"})
        jwr.raise_for_status()
        await io.emit("typing", True)

It speaks Engine.IO v4 and Socket.IO v5 over a websocket (trio-websocket), and sends virtual requests
exactly as sails.io.js does, so it works with a Node Sails server as well as with trisails. On top of
sails.io.js it reconnects by default and, after a reconnect, repeats the requests that had put the
socket in rooms (a trisails server marks them), so subscriptions survive a dropped connection.

Structured concurrency: ``connect()`` owns a nursery with every task the client runs (the reader, the
heartbeat watchdog, the writer, the reconnect loop, the event dispatcher). Leaving the block closes the
connection and ends them all. The task tree is drawn in ``trisails/client/_client.py``.

Everything public is re-exported here; the ``_``-modules are internal.
"""

from .._errors import AckTimeout as AckTimeout
from .._errors import ConnectionRefused as ConnectionRefused
from .._errors import DisconnectedError as DisconnectedError
from ._client import Backoff as Backoff
from ._client import Client as Client
from ._client import connect as connect
from ._errors import ConnectError as ConnectError
from ._errors import JWRError as JWRError
from ._jwr import JWR as JWR
from ._presence import Presence as Presence

__all__ = [
    "JWR",
    "AckTimeout",
    "Backoff",
    "Client",
    "ConnectError",
    "ConnectionRefused",
    "DisconnectedError",
    "JWRError",
    "Presence",
    "connect",
]
