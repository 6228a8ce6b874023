"""config/env/<environment>.py: settings that hold in one environment only, as Sails' config/env/."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.cli import free_port, run_cli, serving
from trisails import App, AppLoadError


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


PRODUCTION = """\
sockets = {
    "ping_interval": 5000,
    "only_allow_origins": ["https://example.com"],
}
datastores = {"url": "sqlite:///production.db"}
custom = {"who": "production"}
"""


def an_app(folder: Path) -> Path:
    return write(
        folder,
        {
            "config/sockets.py": "ping_interval = 1000\n",
            "config/custom.py": "who = 'development'\ncolour = 'blue'\n",
            "config/env/production.py": PRODUCTION,
            "config/env/development.py": "log = {'level': 'debug'}\n",
            "api/controllers/say.py": "from trisails import sails\n\nasync def who(req, res):\n    return res.ok(sails.config.custom)\n",
        },
    )


def test_the_production_file_wins_in_production_only_and_the_development_file_in_development(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRISAILS_ENV", raising=False)
    monkeypatch.delenv("TRISAILS_DATABASE_URL", raising=False)
    folder = an_app(tmp_path)

    development = App.load(folder).settings
    assert (development.sockets.ping_interval, development.sockets.only_allow_origins) == (1000, ())
    assert development.custom == {"who": "development", "colour": "blue"}
    assert development.log.level == "debug"

    production = App.load(folder, environment="production").settings
    assert (production.sockets.ping_interval, production.sockets.only_allow_origins) == (5000, ("https://example.com",))
    assert production.custom == {"who": "production", "colour": "blue"}  # merged, as Sails merges
    assert production.datastores.url == "sqlite:///production.db"
    assert production.log.level == "info"

    monkeypatch.setenv("TRISAILS_ENV", "production")
    assert App.load(folder).settings.sockets.ping_interval == 5000
    monkeypatch.setenv("TRISAILS_DATABASE_URL", "sqlite:///from-the-environment.db")
    assert App.load(folder).settings.datastores.url == "sqlite:///from-the-environment.db"  # the variable wins


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("socket = {'ping_interval': 1}\n", r"'socket' is not a section of the settings; the sections are blueprints, datastores", 1),
        ("http = {}\nsockets = {\n    'ping_intervall': 1,\n}\n", r"unknown setting 'ping_intervall'; known settings are", 3),
        ("sockets = {'ping_interval': '5s'}\n", r"'ping_interval' takes a number", 1),
        ("\nhttp = 8080\n", r"http must be a dict of settings, like http = \{\.\.\.\}; got 8080", 2),
    ],
)
def test_a_mistake_in_an_environment_file_points_at_its_line(tmp_path: Path, text: str, message: str, line: int) -> None:
    write(tmp_path, {"config/env/production.py": text})
    App.load(tmp_path)  # the development environment does not read it
    with pytest.raises(AppLoadError, match=message) as raised:
        App.load(tmp_path, environment="production")
    assert raised.value.file == str(tmp_path / "config" / "env" / "production.py")
    assert raised.value.line == line


def test_an_environment_that_does_not_exist_is_named_with_the_ones_that_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRISAILS_ENV", "staging")
    with pytest.raises(AppLoadError, match="TRISAILS_ENV is 'staging'; the environments are development and production"):
        App.load(tmp_path)


async def test_the_command_serves_production_settings_from_the_environment_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = an_app(tmp_path / "app")
    secret = {"TRISAILS_SESSION_SECRET": "a long random string for this test only", "TRISAILS_DATABASE_URL": ""}
    monkeypatch.delenv("TRISAILS_ENV", raising=False)
    # production refuses to lift without an origin decision: here config/env/production.py makes it
    async with serving(str(folder), "--prod", "--port", str(free_port()), cwd=tmp_path, env=secret) as server:
        async with httpx.AsyncClient() as http:
            assert (await http.get(server.url + "/say/who")).json() == {"who": "production", "colour": "blue"}
        assert await server.stop() == 0
    async with serving(str(folder), "--port", str(free_port()), cwd=tmp_path, env=secret) as server:
        async with httpx.AsyncClient() as http:
            assert (await http.get(server.url + "/say/who")).json() == {"who": "development", "colour": "blue"}
        assert await server.stop() == 0

    write(folder, {"config/env/production.py": "sockets = {'only_allow_origin': ['https://example.com']}\n"})
    refused = await run_cli(str(folder), "--prod", "--port", "0", cwd=tmp_path, env=secret)
    assert refused.returncode == 2
    assert "unknown setting 'only_allow_origin'" in refused.stderr
    assert "config/env/production.py:1)" in refused.stderr
