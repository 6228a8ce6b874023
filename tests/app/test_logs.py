"""A developer wants to see what happened: an access line per HTTP and socket request (refusals too),
socket connects and disconnects at debug, ``sails.log`` in actions, the level from config/log.py or
``--log-level``."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

import trisails.client
from tests.app.test_cli import free_port
from trisails import App, AppLoadError, Request, Response, sails

ROOT = Path(__file__).resolve().parents[2]

ACTIONS = '''
from trisails import sails


async def hello(req, res):
    sails.log.info("said hello to", req.param("name", "nobody"))
    sails.log.verbose("a very detailed line")
    return res.ok("hi")
'''


class Output:
    """A child process's merged output, read as it comes, so a test waits for a line, not a time."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.text = ""

    async def until(self, pattern: str) -> re.Match[str]:
        assert self.process.stdout is not None
        with trio.fail_after(20):
            while (found := re.search(pattern, self.text, re.MULTILINE)) is None:
                chunk = await self.process.stdout.receive_some(65536)
                assert chunk, f"the process ended before {pattern!r} was printed:\n{self.text}"
                self.text += chunk.decode()
        return found


async def serve(folder: Path, *args: str) -> tuple[trio.Process, Output, str]:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "trisails", str(folder), "--port", str(free_port()), *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    output = Output(process)
    url = (await output.until(r"on (http://\S+) \(Ctrl-C"))[1]
    return process, output, url


async def stop(process: trio.Process) -> None:
    process.send_signal(signal.SIGTERM)
    with trio.fail_after(10):
        assert await process.wait() == 0


def app_folder(tmp_path: Path, log_config: str | None) -> Path:
    folder = tmp_path / "app"
    (folder / "api" / "controllers").mkdir(parents=True)
    (folder / "api" / "controllers" / "say.py").write_text(ACTIONS)
    (folder / "config").mkdir()
    if log_config is not None:
        (folder / "config" / "log.py").write_text(log_config)
    return folder


async def test_with_config_log_at_debug_every_request_and_socket_leaves_a_line(tmp_path: Path) -> None:
    process, output, url = await serve(app_folder(tmp_path, 'level = "debug"\n'))
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/say/hello", params={"name": "ann"})).text == "hi"
            assert (await http.get("/no/such/page")).status_code == 404
        await output.until(r"trisails.access: GET /say/hello 200 [0-9.]+ms http 127\.0\.0\.1$")
        await output.until(r"trisails.access: GET /no/such/page 404 [0-9.]+ms http")
        await output.until(r"INFO trisails.app: said hello to ann$")

        async with trisails.client.connect(url, reconnection=False) as io:
            body, jwr = await io.get("/say/hello")
            assert (body, jwr.status_code) == ("hi", 200)
            _, refused = await io.post("/nowhere")
            assert refused.status_code == 404
            socket_id = (await output.until(r"trisails.sockets: socket (\S+) connected from 127\.0\.0\.1$"))[1]
            await output.until(rf"trisails.access: GET /say/hello 200 [0-9.]+ms socket {re.escape(socket_id)}$")
            await output.until(rf"trisails.access: POST /nowhere 404 [0-9.]+ms socket {re.escape(socket_id)}$")
        await output.until(rf"trisails.sockets: socket {re.escape(socket_id)} disconnected: ")
        assert "a very detailed line" not in output.text  # verbose is below debug
    finally:
        await stop(process)


async def test_the_command_line_level_wins_over_config_log(tmp_path: Path) -> None:
    process, output, url = await serve(app_folder(tmp_path, 'level = "error"\n'), "--log-level", "verbose")
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            await http.get("/say/hello")
        await output.until(r"VERBOSE trisails.app: a very detailed line$")
        await output.until(r"trisails.access: GET /say/hello 200")
    finally:
        await stop(process)


async def test_at_warn_requests_leave_no_line_and_access_can_be_turned_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = App()

    @app.action("say/hello")
    async def hello(req: Request, res: Response) -> None:
        sails.log.warn("careful", 3)
        return res.ok()

    with caplog.at_level(logging.WARNING):
        async with app.lifted() as url, httpx.AsyncClient(base_url=url) as http:
            await http.get("/say/hello")
    assert [r.getMessage() for r in caplog.records if r.name.startswith("trisails.")] == ["careful 3"]

    app.settings.log.access = False
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        async with app.lifted() as url, httpx.AsyncClient(base_url=url) as http:
            await http.get("/say/hello")
    assert not [r for r in caplog.records if r.name == "trisails.access"]


def test_sails_log_works_without_an_app_and_an_unknown_level_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="trisails.app"):
        sails.log("plain", {"a": 1})
        sails.log.error("bad", "thing")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [("DEBUG", "plain {'a': 1}"), ("ERROR", "bad thing")]
    with pytest.raises(AppLoadError, match="log.level must be one of"):
        App.load(app_folder(tmp_path, 'level = "loud"\n'))
