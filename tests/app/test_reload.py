"""`python -m trisails --reload`: edit an action, save, and the next request gets the new answer; the
port never refuses a connection meanwhile, and a broken save is said, not fatal."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from tests.support.cli import free_port, serving

SAY = "async def hello(req, res):\n    return res.ok({{'answer': {answer!r}}})\n"


def fresh_connections() -> httpx.AsyncClient:
    """A client that opens a new TCP connection for every request (as many browsers' first requests do)."""
    return httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0), timeout=40)


async def answer(http: httpx.AsyncClient, url: str) -> httpx.Response:
    return await http.get(url + "/say/hello")


async def wait_for_answer(http: httpx.AsyncClient, url: str, expected: object, *, bound: float = 30) -> None:
    """Ask until the answer is ``expected`` (each request waits for the restart; the loop is bounded)."""
    with trio.fail_after(bound):
        while True:
            response = await answer(http, url)
            if response.status_code == 200 and response.json() == expected:
                return
            await trio.sleep(0.05)


async def test_an_edited_action_answers_after_the_restart_and_the_port_never_refuses(tmp_path: Path) -> None:
    app = tmp_path / "app"
    controller = app / "api" / "controllers" / "say.py"
    controller.parent.mkdir(parents=True)
    controller.write_text(SAY.format(answer="first"))
    (app / ".tmp").mkdir()

    async with serving(str(app), "--reload", "--port", str(free_port()), cwd=tmp_path) as server:
        assert b"restarting it when a file under it changes" in server.output
        async with fresh_connections() as http:
            assert (await answer(http, server.url)).json() == {"answer": "first"}

            refused: list[BaseException] = []
            answers: list[object] = []
            done = trio.Event()

            async def keep_asking() -> None:
                """New connections, one after another, all through the restart."""
                for _ in range(2000):  # bounded; ends much earlier, when the edit has been seen
                    try:
                        response = await answer(http, server.url)
                        answers.append(response.json())
                    except httpx.TransportError as error:
                        refused.append(error)
                    if done.is_set():
                        return
                    await trio.sleep(0.01)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(keep_asking)
                (app / ".tmp" / "scratch.py").write_text("ignored = True\n")  # .tmp/ is not watched
                controller.write_text(SAY.format(answer="second"))
                await wait_for_answer(http, server.url, {"answer": "second"})
                done.set()
            assert refused == []
            assert answers[0] == {"answer": "first"} and answers[-1] == {"answer": "second"}
            output = await server.read_until(b"the app is serving again")
            assert b"api/controllers/say.py changed; restarting the app" in server.output + output
            assert b"scratch.py" not in server.output

            # a save that breaks the app: its message, and a 503 saying so, until the next save fixes it
            controller.write_text("async def hello(req, res)\n    return 1\n")
            await server.read_until(b"did not start")
            assert b"SyntaxError: expected ':'" in server.output
            broken = await answer(http, server.url)
            assert broken.status_code == 503 and "failed to start" in broken.text
            controller.write_text(SAY.format(answer="third"))
            await wait_for_answer(http, server.url, {"answer": "third"})
        assert await server.stop() == 0
