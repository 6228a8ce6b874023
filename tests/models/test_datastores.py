"""Datastores: where an app keeps its records, what lifting does to the tables, and how an app folder
says which database to use (``config/datastores.py``, ``TRISAILS_DATABASE_URL``, ``api/models/*.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.models.apps import WAIT, User, http_client, in_production, pets_app
from trisails import App, AppLoadError, ConfigError, DatastoreSettings, Settings


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


MODELS = {
    "api/models/user.py": (
        "from trisails import Model, Optional, Required, Set\n\n"
        "class User(Model):\n"
        "    name = Required(str, unique=True)\n"
        "    pets = Set('Pet')\n"
    ),
    "api/models/pet.py": (
        "from trisails import Model, Optional, Required\n"
        "from .user import User\n\n"  # imported, so not a model of this file: User is declared once
        "class Pet(Model):\n"
        "    name = Required(str)\n"
        "    owner = Optional(User)\n"
    ),
    "api/models/_helpers.py": "raise RuntimeError('files starting with _ are not models')\n",
}


def lift_fails(match: str) -> pytest.RaisesExc[ConfigError]:
    """A lift that raises :class:`ConfigError` (``App.lifted`` raises it as it is, not in a group)."""
    return pytest.raises(ConfigError, match=match)


# ------------------------------------------------------------------------------------------------ where records live
async def test_an_app_folder_keeps_its_records_in_tmp_across_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRISAILS_DATABASE_URL", raising=False)
    write(tmp_path, MODELS)
    with trio.fail_after(WAIT):
        app = App.load(tmp_path)
        async with app.lifted() as url, http_client(url) as http:
            assert sorted(app.models) == ["pet", "user"]
            assert (await http.post("/user", json={"name": "ann"})).status_code == 200
            assert (await http.post("/pet", json={"name": "rex", "owner": 1})).status_code == 200
        assert (tmp_path / ".tmp" / "localDiskDb.sqlite").is_file()  # where sails-disk keeps them
        async with App.load(tmp_path).lifted() as url, http_client(url) as http:
            (ann,) = (await http.get("/user")).json()
            assert ann["name"] == "ann" and [p["name"] for p in ann["pets"]] == ["rex"]


async def test_records_survive_lowering_and_lifting_again(settings: Settings) -> None:
    app = pets_app(settings)
    with trio.fail_after(WAIT):
        async with app.lifted():
            await User.create({"name": "ann"})
        async with app.lifted() as url, http_client(url) as http:
            assert [u["name"] for u in (await http.get("/user")).json()] == ["ann"]
            assert (await http.post("/user", json={"name": "bob"})).json()["id"] == 2


async def test_an_in_memory_database_lasts_as_long_as_the_app() -> None:
    app = pets_app(Settings(datastores=DatastoreSettings(url="sqlite://:memory:")))
    with trio.fail_after(WAIT):
        async with app.lifted() as url, http_client(url) as http:
            for name in ("ann", "bob", "cat"):  # each request runs in a worker thread: they share it
                assert (await http.post("/user", json={"name": name})).status_code == 200
            assert len((await http.get("/user")).json()) == 3
        async with app.lifted():
            assert await User.count() == 0


async def test_an_app_in_code_without_a_folder_gets_a_scratch_database() -> None:
    app = pets_app()
    with trio.fail_after(WAIT):
        async with app.lifted():
            await User.create({"name": "ann"})
            assert app.datastore is not None
            scratch = Path(app.datastore.bind_args["filename"])
            assert scratch.is_file()
    assert not scratch.exists()  # removed when the app lowered


# ------------------------------------------------------------------------------------------------ migrate
async def test_migrate_safe_needs_the_tables_and_says_how_to_make_them(settings: Settings) -> None:
    settings.datastores.migrate = "safe"
    with trio.fail_after(WAIT):
        with lift_fails(r"migrate is 'safe', which never creates tables: run once with 'alter'"):
            async with pets_app(settings).lifted():
                pass  # pragma: no cover
        settings.datastores.migrate = "alter"
        async with pets_app(settings).lifted():
            await User.create({"name": "ann"})
        settings.datastores.migrate = "safe"
        async with pets_app(settings).lifted():
            assert await User.count() == 1


async def test_production_leaves_the_tables_alone_by_default(settings: Settings) -> None:
    in_production(settings)
    settings.datastores.migrate = "auto"  # safe, in production
    with trio.fail_after(WAIT):
        with lift_fails("run once with 'alter'"):
            async with pets_app(settings).lifted():
                pass  # pragma: no cover


async def test_migrate_drop_starts_from_empty_tables(settings: Settings) -> None:
    with trio.fail_after(WAIT):
        async with pets_app(settings).lifted():
            await User.create({"name": "ann"})
        settings.datastores.migrate = "drop"
        async with pets_app(settings).lifted():
            assert await User.count() == 0
            assert (await User.create({"name": "ann"}))["id"] == 1


# ------------------------------------------------------------------------------------------------ bad settings
@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("mysql://root@localhost/app", "trisails knows sqlite:// and postgres:// URLs"),
        ("sqlite://app.db", r"write sqlite:///relative/file.db or sqlite:////absolute/file.db"),
        ("postgres://postgres@127.0.0.1:5432", "names no database"),
    ],
)
async def test_a_datastore_url_trisails_cannot_use_fails_the_lift(url: str, match: str) -> None:
    with trio.fail_after(WAIT):
        with lift_fails(match):
            async with pets_app(Settings(datastores=DatastoreSettings(url=url))).lifted():
                pass  # pragma: no cover


async def test_a_database_that_cannot_be_opened_is_named_without_the_password() -> None:
    url = "postgres://postgres:hunter2@127.0.0.1:5432/trisails_no_such_database"
    with trio.fail_after(WAIT):
        described = r"cannot open the datastore postgres://postgres@127.0.0.1:5432/trisails_no_such_database"
        with lift_fails(described) as failed:
            async with pets_app(Settings(datastores=DatastoreSettings(url=url))).lifted():
                pass  # pragma: no cover
    assert "hunter2" not in str(failed.value) and "hunter2" not in str(failed.value.__cause__)


def test_datastore_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="datastores.migrate"):
        App(Settings(datastores=DatastoreSettings(migrate="sometimes")))
    with pytest.raises(ConfigError, match="pool_size"):
        App(Settings(datastores=DatastoreSettings(pool_size=-1)))


# ------------------------------------------------------------------------------------------------ app folders
async def test_config_datastores_py_says_where_and_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRISAILS_DATABASE_URL", raising=False)
    config = "url = 'sqlite:///data/app.db'\nmigrate = 'alter'\npool_size = 2\n"
    write(tmp_path, {**MODELS, "config/datastores.py": config})
    app = App.load(tmp_path)
    assert app.settings.datastores == DatastoreSettings(url="sqlite:///data/app.db", migrate="alter", pool_size=2)
    with trio.fail_after(WAIT):
        async with app.lifted():
            await User.create({"name": "ann"})
    assert (tmp_path / "data" / "app.db").is_file()  # relative to the app folder


async def test_TRISAILS_DATABASE_URL_overrides_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, {**MODELS, "config/datastores.py": "url = 'sqlite:///data/app.db'\n"})
    elsewhere = tmp_path / "elsewhere.db"
    monkeypatch.setenv("TRISAILS_DATABASE_URL", f"sqlite:///{elsewhere}")
    app = App.load(tmp_path)
    assert app.settings.datastores.url == f"sqlite:///{elsewhere}"
    with trio.fail_after(WAIT):
        async with app.lifted():
            await User.create({"name": "ann"})
    assert elsewhere.is_file() and not (tmp_path / "data").exists()


def test_a_mistake_in_config_datastores_py_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRISAILS_DATABASE_URL", raising=False)
    write(tmp_path, {"config/datastores.py": "adapter = 'sails-disk'\n"})
    with pytest.raises(AppLoadError, match=r"config/datastores.py: unknown setting 'adapter'.*migrate.*url"):
        App.load(tmp_path)
    write(tmp_path, {"config/datastores.py": "url = 5\n"})
    with pytest.raises(AppLoadError, match="'url' takes a string"):
        App.load(tmp_path)


def test_a_model_file_that_breaks_is_named(tmp_path: Path) -> None:
    model = "from trisails import Model, Required\n\nclass User(Model):\n    find = Required(str)\n"
    write(tmp_path, {"api/models/user.py": model})
    with pytest.raises(AppLoadError, match=r"user.py failed to load.*cannot be named 'find'"):
        App.load(tmp_path)
