"""The python-socketio side of the trisails benchmarks: raw events only, under uvicorn.

``python server.py --port 18339 [--ping-interval MS --ping-timeout MS]``; prints ``LISTENING <port>``
once it accepts connections. Events, as in the other two servers:

- ``echo`` (payload, ack): acknowledged with the payload;
- ``join`` (room, ack): enters the room, then acknowledges;
- ``fanout`` ({room, payload}, ack): ``sio.emit("fanout", payload, room=room)``, then acknowledges.

Websocket only, compression off (no HTTP compression, no permessage-deflate), logging off: the settings
of the other servers. uvicorn runs with uvloop, httptools and websockets (``uvicorn[standard]``).
"""

import argparse
import asyncio
import logging

import socketio
import uvicorn
import uvloop


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ping-interval", type=int, default=25000, help="milliseconds")
    parser.add_argument("--ping-timeout", type=int, default=60000, help="milliseconds")
    args = parser.parse_args()

    sio = socketio.AsyncServer(
        async_mode="asgi",
        transports=["websocket"],
        ping_interval=args.ping_interval / 1000,
        ping_timeout=args.ping_timeout / 1000,
        http_compression=False,
        compression_threshold=10**9,
        cors_allowed_origins="*",
        max_http_buffer_size=1_000_000,
        logger=False,
        engineio_logger=False,
    )

    @sio.on("echo")
    async def echo(sid, payload=None):
        return payload

    @sio.on("join")
    async def join(sid, room):
        await sio.enter_room(sid, room)
        return True

    @sio.on("fanout")
    async def fanout(sid, message):
        await sio.emit("fanout", message["payload"], room=message["room"])
        return True

    app = socketio.ASGIApp(sio)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        ws_per_message_deflate=False,
        ws_max_size=1_000_000,
        backlog=4096,
        lifespan="off",
    )
    server = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                await task
                return
            await asyncio.sleep(0.05)
        print(f"LISTENING {args.port}", flush=True)
        await task

    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    uvloop.run(serve())  # the loop uvicorn itself picks when uvloop is installed


if __name__ == "__main__":
    main()
