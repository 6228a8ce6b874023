"""`python -m trisails`: serves a folder or the demo, and stops cleanly on SIGTERM or Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from tests.support.apps import EXAMPLES
from tests.support.raw import close_tcp, ws_url

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@asynccontextmanager
async def running(*args: str) -> AsyncIterator[tuple[trio.Process, str]]:
    """The CLI started with ``args``, once it says where it serves; killed on exit if still running."""
    process, url = await start(*args)
    try:
        yield process, url
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def start(*args: str) -> tuple[trio.Process, str]:
    """Start the CLI and wait for its "serving ... on URL" line."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "trisails", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    output = b""
    with trio.fail_after(20):
        while b"(Ctrl-C to stop)" not in output:
            chunk = await process.stdout.receive_some(4096)
            assert chunk, f"the CLI exited early: {output.decode()}"
            output += chunk
    match = re.search(rb"on (http://\S+) \(Ctrl-C", output)
    assert match, output
    return process, match.group(1).decode()


async def test_the_cli_serves_the_reference_example_and_stops_cleanly_on_sigterm() -> None:
    port = free_port()
    async with running(str(EXAMPLES / "socketio_reference"), "--port", str(port)) as (process, url):
        assert url == f"http://127.0.0.1:{port}"
        async with open_websocket_url(ws_url(url)) as ws:
            try:
                handshake = await ws.get_message()
                assert '"pingInterval":300' in handshake
                await ws.send_message("40")
                process.send_signal(signal.SIGTERM)
                with trio.fail_after(5):
                    try:
                        while True:
                            frame = await ws.get_message()
                            if frame == "2":
                                await ws.send_message("3")
                    except ConnectionClosed as closed:
                        assert closed.reason.code == 1001
            finally:
                await close_tcp(ws)
        with trio.fail_after(10):
            assert await process.wait() == 0


async def test_the_cli_serves_the_demo_with_no_folder_and_stops_on_ctrl_c() -> None:
    async with running("--port", str(free_port())) as (process, url):
        async with httpx.AsyncClient() as http:
            assert "trisails is lifted" in (await http.get(url + "/")).text
        process.send_signal(signal.SIGINT)
        with trio.fail_after(10):
            assert await process.wait() == 0


async def test_an_impatient_second_ctrl_c_still_ends_in_a_clean_exit() -> None:
    async with running("--port", str(free_port())) as (process, url):
        async with httpx.AsyncClient() as browser:  # an idle keep-alive connection, as browsers keep
            assert (await browser.get(url + "/")).status_code == 200
            process.send_signal(signal.SIGINT)
            await trio.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(10):
                assert await process.wait() == 0


async def test_the_cli_explains_a_folder_it_cannot_load(tmp_path: Path) -> None:
    result = await trio.run_process(
        [sys.executable, "-m", "trisails", str(tmp_path / "missing")], cwd=ROOT, capture_stdout=True, capture_stderr=True, check=False
    )
    assert result.returncode == 2
    assert b"does not exist" in result.stderr


async def test_prod_refuses_to_start_without_a_session_secret_and_origins_then_runs_with_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRISAILS_SESSION_SECRET", raising=False)
    env = dict(os.environ)
    result = await trio.run_process(
        [sys.executable, "-m", "trisails", str(EXAMPLES / "quickstart"), "--prod", "--port", "0"],
        cwd=ROOT, capture_stdout=True, capture_stderr=True, check=False, env={**env, "TRISAILS_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite"},
    )
    assert result.returncode == 2
    assert b"production mode needs a session secret" in result.stderr
    assert b"only_allow_origins" in result.stderr

    (tmp_path / "app" / "config").mkdir(parents=True)
    (tmp_path / "app" / "config" / "sockets.py").write_text('only_allow_origins = ["https://example.com"]\n')
    monkeypatch.setenv("TRISAILS_SESSION_SECRET", "a long random string for this test only")
    async with running(str(tmp_path / "app"), "--prod", "--port", str(free_port())) as (process, url):
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/nothing/here")).text == "Not Found"
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            assert await process.wait() == 0


async def test_run_inside_an_app_folder_with_no_argument_it_serves_that_folder(tmp_path: Path) -> None:
    (tmp_path / "api" / "controllers").mkdir(parents=True)
    (tmp_path / "api" / "controllers" / "say.py").write_text("async def hello(req, res):\n    return res.ok('from my app')\n")
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "trisails", "--port", str(free_port())],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout is not None
        output = b""
        with trio.fail_after(20):
            while b"(Ctrl-C to stop)" not in output:
                chunk = await process.stdout.receive_some(4096)
                assert chunk, output.decode()
                output += chunk
        assert f"serving {tmp_path} on".encode() in output
        url = re.search(rb"on (http://\S+) \(Ctrl-C", output).group(1).decode()  # type: ignore[union-attr]
        async with httpx.AsyncClient() as http:
            assert (await http.get(url + "/say/hello")).text == "from my app"
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
