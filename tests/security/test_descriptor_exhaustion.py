"""A server out of file descriptors keeps serving the connections it has, and recovers.

The app runs in a child process whose limit of open files is lowered to a few dozen (``RLIMIT_NOFILE``,
what ``ulimit -n`` sets), with the per-address cap off so that the descriptors really run out. A flood
of connections that send nothing exhausts them; ``accept`` then fails with EMFILE. Before, trio's
accept loop logged a traceback ten times a second for as long as it lasted. Now it says so once, keeps
serving the connection it already had, and accepts again once the flood lets go.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import trio

#: Open files the child may have: its own few, and some dozens of connections.
FILE_LIMIT = 64
#: Connections the flood opens: more than the child has descriptors for.
FLOOD = 120
WAIT = 10.0

CHILD = textwrap.dedent(
    f"""
    import logging, os, resource, sys
    import trio
    from trisails import App

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, ({FILE_LIMIT}, hard))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    app = App()
    app.settings.http.max_connections_per_ip = 0  # so that the descriptors, not the cap, run out
    app.settings.http.keep_alive_timeout = 60.0
    app.settings.sockets.handshake_timeout = 60_000  # the flood's silent connections stay

    async def main() -> None:
        async with app.lifted() as url:
            print(url, flush=True)
            stdin = trio.lowlevel.FdStream(os.dup(0))
            while await stdin.receive_some():  # until the test closes our stdin
                pass

    trio.run(main)
    """
)


class ChildLog:
    """The child's stderr, read as it comes, with a way to wait for a line."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self.text = ""
        self._changed = trio.Event()

    async def pump(self) -> None:
        while chunk := await self._stream.receive_some(65536):
            self.text += chunk.decode(errors="replace")
            self._changed.set()
            self._changed = trio.Event()

    async def wait_for(self, fragment: str, count: int = 1) -> None:
        with trio.fail_after(WAIT):
            while self.text.count(fragment) < count:
                await self._changed.wait()


async def get_health(stream: trio.SocketStream) -> bytes:
    await stream.send_all(b"GET /__health HTTP/1.1\r\nhost: x\r\n\r\n")
    answer = b""
    with trio.fail_after(WAIT):
        while b"}" not in answer:
            chunk = await stream.receive_some(65536)
            assert chunk, f"closed after {answer!r}"
            answer += chunk
    return answer


async def test_running_out_of_descriptors_is_logged_once_and_serving_goes_on() -> None:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    log = ChildLog(process.stderr)
    flood: list[trio.SocketStream] = []
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(log.pump)
            with trio.fail_after(WAIT):
                line = b""
                while not line.endswith(b"\n"):
                    chunk = await process.stdout.receive_some(1024)
                    assert chunk, log.text
                    line += chunk
            host, port = line.decode().strip().removeprefix("http://").rsplit(":", 1)

            regular = await trio.open_tcp_stream(host, int(port))  # a client from before the flood
            assert (await get_health(regular)).startswith(b"HTTP/1.1 200")
            for _ in range(FLOOD):  # the kernel completes them all; the child runs out of descriptors
                flood.append(await trio.open_tcp_stream(host, int(port)))
            await log.wait_for("cannot accept connections")

            # starved: what was open is still served
            assert (await get_health(regular)).startswith(b"HTTP/1.1 200")

            for stream in flood:
                await stream.aclose()
            flood.clear()
            await log.wait_for("accepting connections again")
            async with await trio.open_tcp_stream(host, int(port)) as newcomer:
                assert (await get_health(newcomer)).startswith(b"HTTP/1.1 200")
            await regular.aclose()

            await process.stdin.aclose()  # the child lowers its app and exits
            with trio.fail_after(WAIT):
                await process.wait()
            nursery.cancel_scope.cancel()
    finally:
        for stream in flood:
            await stream.aclose()
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, log.text
    assert log.text.count("cannot accept connections") == 1, log.text
    assert "Traceback" not in log.text, log.text
