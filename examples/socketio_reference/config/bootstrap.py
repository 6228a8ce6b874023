"""Behave like the reference server of the Socket.IO protocol's compliance test-suite.

On connection it emits ``auth`` with the handshake's auth payload; ``message`` comes back as
``message-back`` with the same arguments (binary included); ``message-with-ack`` is acknowledged with
its own arguments. Namespace ``/custom`` does the same.

Start it with ``python -m trisails examples/socketio_reference --port 3000``.
"""

from trisails import App, Socket


def bootstrap(app: App) -> None:
    for name in ("/", "/custom"):
        app.io.of(name).on("connection", _echo)


def _echo(socket: Socket) -> None:
    socket.emit("auth", socket.handshake.auth)

    @socket.on("message")
    def message(*args):
        socket.emit("message-back", *args)

    @socket.on("message-with-ack")
    def message_with_ack(*args):
        return args
