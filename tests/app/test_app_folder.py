"""App folders: config files become settings, bootstrap runs at lift, and mistakes are named clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.raw import raw_websocket
from trisails import App, AppLoadError, ConfigError, Settings, SocketSettings


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def test_config_files_become_settings(tmp_path: Path) -> None:
    app = App.load(
        write(
            tmp_path,
            {
                "config/sockets.py": "ping_interval = 1000\ntransports = ['websocket']\n_helper = 3\n",
                "config/http.py": "port = 4000\n",
            },
        )
    )
    assert app.settings.sockets.ping_interval == 1000
    assert app.settings.sockets.transports == ("websocket",)
    assert app.settings.http.port == 4000
    assert app.root == tmp_path.resolve()


def test_a_misspelt_setting_is_named_with_the_ones_that_exist(tmp_path: Path) -> None:
    write(tmp_path, {"config/sockets.py": "ping_intervall = 1000\n"})
    with pytest.raises(AppLoadError, match=r"config/sockets.py: unknown setting 'ping_intervall'; known settings are .*ping_interval"):
        App.load(tmp_path)


def test_a_setting_of_the_wrong_kind_is_refused(tmp_path: Path) -> None:
    write(tmp_path, {"config/sockets.py": "ping_interval = '25s'\n"})
    with pytest.raises(AppLoadError, match=r"'ping_interval' takes a number \(default 25000\), got '25s'"):
        App.load(tmp_path)


def test_an_impossible_value_is_refused(tmp_path: Path) -> None:
    write(tmp_path, {"config/sockets.py": "transports = ['carrier-pigeon']\n"})
    with pytest.raises(AppLoadError, match="sockets.transports"):
        App.load(tmp_path)
    with pytest.raises(ConfigError, match="slow_consumer"):
        App(Settings(sockets=SocketSettings(slow_consumer="ignore")))  # type: ignore[arg-type]


def test_a_broken_config_module_names_the_file(tmp_path: Path) -> None:
    write(tmp_path, {"config/sockets.py": "ping_interval = (\n"})
    with pytest.raises(AppLoadError, match="sockets.py failed to load"):
        App.load(tmp_path)


def test_a_missing_folder_or_bootstrap_function_is_named(tmp_path: Path) -> None:
    with pytest.raises(AppLoadError, match="does not exist"):
        App.load(tmp_path / "nope")
    write(tmp_path, {"config/bootstrap.py": "x = 1\n"})
    with pytest.raises(AppLoadError, match="must define a function bootstrap"):
        App.load(tmp_path)


def test_production_mode_comes_from_the_argument_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert App.load(tmp_path).settings.environment == "development"
    assert App.load(tmp_path, environment="production").settings.production
    monkeypatch.setenv("TRISAILS_ENV", "production")
    assert App.load(tmp_path).settings.production


async def test_bootstrap_runs_at_lift_and_can_be_async(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "config/bootstrap.py": (
                "import trio\n"
                "async def bootstrap(app):\n"
                "    await trio.sleep(0)\n"
                "    app.io.on('connection', lambda socket: socket.emit('hello', app.settings.environment))\n"
            )
        },
    )
    app = App.load(tmp_path)
    async with app.lifted() as url, raw_websocket(url) as ws:
        await ws.handshake()
        await ws.send("40")
        await ws.receive()
        await ws.expect('42["hello","development"]')
