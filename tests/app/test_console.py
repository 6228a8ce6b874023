"""`python -m trisails console`, typed into as a user would (through its stdin): the app is lifted,
`await` works at the prompt, and what the console does reaches real clients."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import trio

import trisails.client
from tests.support.cli import cli_env

FILES = {
    "api/models/user.py": "from trisails import Model, Required\n\n\nclass User(Model):\n    name = Required(str)\n",
    "config/datastores.py": "url = 'sqlite:///db.sqlite'\n",
}


class Prompt:
    """The console process: type a line, read what it printed until some text appears."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.output = b""

    async def type(self, line: str) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(line.encode() + b"\n")

    async def read_until(self, text: str, timeout: float = 20) -> str:
        assert self.process.stdout is not None
        start = len(self.output)
        with trio.fail_after(timeout):
            while text.encode() not in self.output[start:]:
                chunk = await self.process.stdout.receive_some(4096)
                assert chunk, f"the console exited; it printed:\n{self.output.decode(errors='replace')}"
                self.output += chunk
        return self.output[start:].decode()


async def test_the_console_lifts_the_app_and_awaits_at_the_prompt(tmp_path: Path) -> None:
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "trisails", "console", str(tmp_path), "--log-level", "warn"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=cli_env(),
    )
    prompt = Prompt(process)
    try:
        banner = await prompt.read_until("Ctrl-D (or exit()) lowers the app and leaves.")
        assert "At hand: sails, app, trio, User. await works: await User.find()" in banner
        url = re.search(r"lifted on (http://\S+)", banner).group(1)  # type: ignore[union-attr]

        async with trisails.client.connect(url) as io:
            heard, hearing = trio.open_memory_channel[list[object]](10)
            io.on("announcement", heard.send_nowait)

            await prompt.type('ann = await User.create({"name": "ann"})')
            await prompt.type('ann["name"], await User.count()')
            assert "('ann', 1)" in await prompt.read_until("('ann', 1)")

            await prompt.type('sails.sockets.blast("announcement", {"users": await User.count()})')
            with trio.fail_after(10):
                assert await hearing.receive() == {"users": 1}

            async with httpx.AsyncClient() as http:  # the same app serves HTTP meanwhile
                assert [u["name"] for u in (await http.get(url + "/user")).json()] == ["ann"]

        await prompt.type("1/0")
        failure = await prompt.read_until("ZeroDivisionError: division by zero")
        assert 'File "<trisails console>", line 1' in failure and "trio" not in failure  # the user's frames only
        await prompt.type("print('still here', len(await User.find()))")
        await prompt.read_until("still here 1")

        assert process.stdin is not None
        await process.stdin.aclose()  # Ctrl-D
        await prompt.read_until("trisails console: lowering the app")
        with trio.fail_after(10):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_the_console_refuses_a_broken_app_as_serving_does(tmp_path: Path) -> None:
    (tmp_path / "api" / "controllers").mkdir(parents=True)
    (tmp_path / "api" / "controllers" / "say.py").write_text("async def hello(req, res)\n    pass\n")
    with trio.fail_after(30):
        result = await trio.run_process(
            [sys.executable, "-m", "trisails", "console", str(tmp_path)],
            capture_stdout=True, capture_stderr=True, check=False, env=cli_env(), stdin=b"",
        )
    assert result.returncode == 2
    assert b"SyntaxError: expected ':'" in result.stderr and b"api/controllers/say.py:1)" in result.stderr
