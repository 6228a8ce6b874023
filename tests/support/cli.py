"""Running ``python -m trisails`` as a user does: in a folder of theirs, as a separate process.

``run_cli`` runs a command that ends (``new``, ``generate``) and returns its exit status and output;
``serving`` starts the server, waits (bounded) for its "serving ... on URL" line, yields the process and
the URL, and stops it at the end, SIGTERM first. The repository is put on ``PYTHONPATH``, so the
command works from any folder.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port nothing listens on right now (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI process: this one's, unbuffered, with the repository importable."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path, **(extra or {})}


@dataclass
class Finished:
    """A CLI command that ran to its end."""

    returncode: int
    stdout: str
    stderr: str


async def run_cli(*args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 60) -> Finished:
    """Run ``python -m trisails ARGS`` in ``cwd`` to its end (within ``timeout`` seconds)."""
    with trio.fail_after(timeout):
        result = await trio.run_process(
            [sys.executable, "-m", "trisails", *args],
            cwd=cwd, env=cli_env(env), capture_stdout=True, capture_stderr=True, check=False,
        )
    return Finished(result.returncode, result.stdout.decode(), result.stderr.decode())


@dataclass
class Server:
    """A ``python -m trisails`` process serving at :attr:`url`; :attr:`output` is what it printed so far."""

    process: trio.Process
    url: str
    output: bytes

    async def read_until(self, text: bytes, *, timeout: float = 20) -> bytes:
        """Read the process's output until ``text`` appears in it (after what was already read)."""
        assert self.process.stdout is not None
        start = len(self.output)
        with trio.fail_after(timeout):
            while text not in self.output[start:]:
                chunk = await self.process.stdout.receive_some(4096)
                assert chunk, f"the CLI exited; it printed:\n{self.output.decode(errors='replace')}"
                self.output += chunk
        return self.output[start:]

    async def stop(self, *, timeout: float = 10) -> int:
        """SIGTERM, then the exit status (within ``timeout`` seconds)."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        with trio.fail_after(timeout):
            return await self.process.wait()


@asynccontextmanager
async def serving(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> AsyncIterator[Server]:
    """``python -m trisails ARGS`` started in ``cwd``, once it says where it serves; stopped at the end."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "trisails", *args],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=cli_env(env),
    )
    server = Server(process, "", b"")
    try:
        await server.read_until(b"(Ctrl-C to stop)")
        match = re.search(rb"on (https?://\S+) \(Ctrl-C", server.output)
        assert match, server.output
        server.url = match.group(1).decode()
        yield server
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            with trio.move_on_after(10):
                await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
