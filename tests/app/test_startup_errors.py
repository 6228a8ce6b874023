"""A developer starts ``python -m trisails`` on a folder with a mistake in it: every mistake is one clear
message naming the file and line and what to do, and the command exits 2, before anything is opened."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

ROOT = Path(__file__).resolve().parents[2]


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


async def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(30):
        return await trio.run_process(
            [sys.executable, "-m", "trisails", *args, "--port", "0"],
            cwd=ROOT,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env={**os.environ, **(env or {})},
        )


MODEL_HEAD = "from trisails import Model, Optional, Required, Set\n\n\n"

MISTAKES = {
    "a syntax error, with a caret under the spot": (
        {"api/controllers/say.py": "async def hello(req, res)\n    return res.ok()\n"},
        ["SyntaxError: expected ':'", "api/controllers/say.py:1)", "async def hello(req, res)\n" + " " * 4 + " " * 25 + "^",
         "Fix the syntax"],
    ),
    "a misspelled name, with its line": (
        {"api/controllers/say.py": "import trio\n\nhelo()\n"},
        ["NameError: name 'helo' is not defined", "api/controllers/say.py:3)", "    helo()", "correct its spelling"],
    ),
    "an import of something not installed": (
        {"api/controllers/say.py": "import left_pad_for_python\n"},
        ["No module named 'left_pad_for_python'", "api/controllers/say.py:1)", "pip install left_pad_for_python"],
    ),
    "a reverse= naming an attribute the other model does not have": (
        {"api/models/card.py": MODEL_HEAD + "class Member(Model):\n    name = Required(str)\n\n\n"
         "class Card(Model):\n    title = Required(str)\n    assignee = Optional(Member, reverse='cards')\n"},
        ["model Card.assignee has reverse='cards', but Member has no attribute 'cards' pointing back to Card",
         "api/models/card.py:10)", "leave reverse= out for a one-way association"],
    ),
    "Optional(list)": (
        {"api/models/thing.py": MODEL_HEAD + "class Thing(Model):\n    tags = Optional(list)\n"},
        ["model Thing.tags: Optional(list) is not a type a column can hold", "api/models/thing.py:5)", "use Json"],
    ),
    "a misspelled option": (
        {"api/models/thing.py": MODEL_HEAD + "class Thing(Model):\n    name = Required(str)\n    n = Optional(int, defualt=3)\n"},
        ["unknown option 'defualt'", "api/models/thing.py:6)", "n = Optional(int, defualt=3)", "default, unique"],
    ),
    "a relation to a model the app does not have": (
        {"api/models/pet.py": MODEL_HEAD + "class Pet(Model):\n    owner = Optional('Persn')\n"},
        ["refers to 'Persn', which is not a model of this app", "api/models/pet.py:5)"],
    ),
    "a setting of the wrong kind": (
        {"config/http.py": "import os\n\nport = '8080'\n"},
        ["config/http.py: setting 'port' takes a number", "config/http.py:3)", "port = '8080'"],
    ),
    "a route to an action that does not exist": (
        {"config/routes.py": "routes = {\n    'GET /': 'say.hello',\n    'GET /x': 'nope.nothing',\n}\n",
         "api/controllers/say.py": "async def hello(req, res):\n    return res.ok()\n"},
        ["config/routes.py:", "nope", "config/routes.py:3)"],
    ),
    "a bootstrap that raises": (
        {"config/bootstrap.py": "def bootstrap(app):\n    limits = {}\n    return limits['rooms']\n"},
        ["cannot lift", "KeyError: 'rooms'", "config/bootstrap.py:3)", "return limits['rooms']"],
    ),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
async def test_each_startup_mistake_is_one_clear_message_and_exit_2(mistake: str, tmp_path: Path) -> None:
    files, expected = MISTAKES[mistake]
    app = write(tmp_path / "app", files)
    result = await cli(os.path.relpath(app, ROOT))
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert stderr.startswith("trisails: "), stderr
    assert "Traceback" not in stderr
    for text in expected:
        assert text in stderr, f"{text!r} not in:\n{stderr}"
    assert "--log-level debug" in stderr


async def test_log_level_debug_adds_the_full_traceback(tmp_path: Path) -> None:
    app = write(tmp_path / "app", {"api/controllers/say.py": "import trio\n\nhelo()\n"})
    result = await cli(str(app), "--log-level", "debug")
    stderr = result.stderr.decode()
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in stderr
    assert "trisails: " in stderr and "NameError: name 'helo' is not defined" in stderr


async def test_a_missing_postgresql_driver_names_the_extra_to_install(tmp_path: Path) -> None:
    # a psycopg2 that cannot be imported, as in an environment installed without the postgres extra
    write(tmp_path / "site", {"psycopg2/__init__.py": "raise ImportError('No module named psycopg2')\n"})
    app = write(tmp_path / "app", {"config/datastores.py": "url = 'postgres://me@127.0.0.1:5432/shop'\n"})
    result = await cli(str(app), env={"PYTHONPATH": str(tmp_path / "site")})
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert "needs the PostgreSQL driver psycopg2" in stderr
    assert "pip install 'trisails[postgres]'" in stderr
    assert "config/datastores.py:1)" in stderr


async def test_nothing_is_opened_before_the_folder_is_known_good(tmp_path: Path) -> None:
    # the database and Redis are unreachable: the folder's own mistake is what the developer hears, at once
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]
    app = write(tmp_path / "app", {
        "config/datastores.py": f"url = 'postgres://me@127.0.0.1:{dead}/shop'\n",
        "config/sockets.py": f"redis_url = 'redis://127.0.0.1:{dead}/0'\n",
        "api/models/thing.py": MODEL_HEAD + "class Thing(Model):\n    tags = Optional(list)\n",
    })
    result = await cli(str(app))
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert "Optional(list) is not a type a column can hold" in stderr
    assert "connect" not in stderr.lower() and "redis" not in stderr.lower()


async def test_a_port_already_in_use_is_one_line_before_anything_opens(tmp_path: Path) -> None:
    app = write(tmp_path / "app", {"config/bootstrap.py": "def bootstrap(app):\n    print('BOOTSTRAP RAN')\n"})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with trio.fail_after(30):
            result = await trio.run_process(
                [sys.executable, "-m", "trisails", str(app), "--port", str(port)],
                cwd=ROOT, capture_stdout=True, capture_stderr=True, check=False,
            )
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert stderr.startswith(f"trisails: cannot listen on 127.0.0.1:{port}: the port is already in use")
    assert "--port" in stderr
    assert b"BOOTSTRAP RAN" not in result.stdout
