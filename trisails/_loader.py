"""Loading an app folder: Sails' conventions, in Python.

An app folder is sugar over the programmatic API; everything it declares can be declared in code::

    myapp/
      api/controllers/say.py  actions: every public function, ``async def hello(req, res)`` is ``say/hello``
      api/models/user.py      models: every trisails.Model subclass defined there (class User(Model): ...)
      api/policies/auth.py    policies: every public function, ``def is_logged_in(req, res)`` is ``is_logged_in``
      config/routes.py        routes = {"GET /hello": "say.hello", ...}
      config/policies.py      policies = {"*": "is_logged_in", "say/hello": True, ...}
      config/sockets.py       settings for app.settings.sockets (ping_interval = 25000, ...)
      config/http.py          settings for app.settings.http (port = 1337, ...)
      config/blueprints.py    settings for app.settings.blueprints (actions = True, prefix = "/api", ...)
      config/datastores.py    settings for app.settings.datastores (url = "postgres://...", migrate = "alter")
      config/session.py       settings for app.settings.session (secret = ..., name = "sails.sid")
      config/security.py      settings for app.settings.security (csrf = True, cors_allow_origins = [...])
      config/log.py           settings for app.settings.log (level = "debug", access = True)
      config/views.py         settings for app.settings.views (layout = "layouts/layout")
      config/custom.py        the app's own settings, as app.settings.custom (Sails' sails.config.custom)
      config/bootstrap.py     def bootstrap(app): ...  (sync or async) runs when the app lifts
      config/env/production.py  sections = dicts over the files above, in that environment only
      assets/                 static files served at /

A config module's settings are its public names (or its ``__all__``); a name the section does not know
is an error that lists the ones it does, so a typo never passes silently.

The folder is imported as a package of its own (named after its path, so two apps never share a
module), which lets its modules import each other relatively: ``config/bootstrap.py`` can say
``from ..game import Match`` for ``game.py`` at the top of the folder, and a controller
``from ..models.user import User``. Each load imports the folder's modules afresh.

``config/env/<environment>.py`` (``development.py`` or ``production.py``, as Sails' ``config/env/``)
is read after the other config files, for the environment the app loads in: each of its public names is
a section (``sockets``, ``http``, ``custom``, ...) holding a dict of settings, which win over the
section's own file: ``sockets = {"only_allow_origins": ["https://example.com"]}``.

The environment variable ``TRISAILS_DATABASE_URL``, when set, overrides ``config/datastores.py``'s
``url``, so one app folder can run against SQLite on a laptop and PostgreSQL in production;
``TRISAILS_REDIS_URL`` likewise sets ``sockets.redis_url``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._config import Settings, apply_section, check_redis
from ._errors import AppLoadError, ConfigError
from ._startup import describe_failure, dict_key_line, key_line, setting_line, source_line
from .orm.datastore import check_url
from .orm.model import DeclarationError

if TYPE_CHECKING:
    from ._app import App

log = logging.getLogger("trisails")

#: config file → the Settings attribute it fills
SECTIONS = {
    "sockets": "sockets",
    "http": "http",
    "blueprints": "blueprints",
    "datastores": "datastores",
    "session": "session",
    "security": "security",
    "log": "log",
    "views": "views",
}
HOOKS = {"bootstrap", "routes", "custom", "policies"}
#: the environments an app loads in; ``config/env/<name>.py`` overrides settings in one of them
ENVIRONMENTS = ("development", "production")


def load_app(cls: type[App], folder: Path, *, environment: str | None = None) -> App:
    """Build an App of class ``cls`` from ``folder``; ``environment`` (or $TRISAILS_ENV) picks the mode."""
    folder = folder.resolve()
    if not folder.is_dir():
        raise AppLoadError(f"app folder {folder} does not exist")
    package = "_trisails_app_" + hashlib.sha1(str(folder).encode()).hexdigest()[:12]
    for name in [n for n in sys.modules if n.startswith(package + ".")]:
        del sys.modules[name]  # a fresh load: no module of an earlier load of this folder is reused
    _package(package, folder)
    chosen = environment or os.environ.get("TRISAILS_ENV") or "development"
    if chosen not in ENVIRONMENTS:
        source = "the environment argument" if environment else "TRISAILS_ENV"
        raise AppLoadError(
            f"{source} is {chosen!r}; the environments are {' and '.join(ENVIRONMENTS)}",
            hint="Set TRISAILS_ENV=production (or pass --prod) for production; leave it unset for development.",
        )
    settings = Settings(environment=chosen)  # type: ignore[arg-type]
    config_dir = folder / "config"
    modules: dict[str, types.ModuleType] = {}
    if config_dir.is_dir():
        for path in sorted(config_dir.glob("*.py")):
            if path.stem.startswith("_"):
                continue
            modules[path.stem] = _import(f"{package}.config.{path.stem}", path)
    for name, module in modules.items():
        if name == "custom":
            settings.custom.update(_settings_of(module))
        elif name in SECTIONS:
            path = config_dir / f"{name}.py"
            for setting, value in _settings_of(module).items():  # one at a time, to point at its line
                try:
                    apply_section(getattr(settings, SECTIONS[name]), {setting: value}, source=f"config/{name}.py")
                except ConfigError as error:
                    raise _pointing(str(error), path, setting_line(path, setting), "Correct the setting (docs/reference/settings.md lists them all).") from None
        elif name not in HOOKS:
            log.warning("config/%s.py is not a known config file (known: %s); ignored", name, ", ".join(sorted(SECTIONS.keys() | HOOKS)))
    _apply_environment(settings, config_dir, package)
    database_url = os.environ.get("TRISAILS_DATABASE_URL")
    if database_url:
        settings.datastores.url = database_url
    redis_url = os.environ.get("TRISAILS_REDIS_URL")
    if redis_url:
        settings.sockets.redis_url = redis_url
    try:
        app = cls(settings, root=folder)
    except ConfigError as error:
        raise AppLoadError(f"{folder}: {error}") from None
    _check_drivers(app, config_dir)
    _load_models(app, folder / "api" / "models", package)
    try:
        app._check_models()
    except DeclarationError as error:
        file, line = error.at if error.at is not None else (None, None)
        raise AppLoadError(
            str(error), file=file, line=line, excerpt=source_line(file, line) if file and line else None, hint=error.hint
        ) from None
    _load_controllers(app, folder / "api" / "controllers", package)
    _load_policies(app, folder / "api" / "policies", package)
    policies_module = modules.get("policies")
    if policies_module is not None:
        mapping = getattr(policies_module, "policies", None)
        if not isinstance(mapping, dict):
            raise AppLoadError(f"{config_dir / 'policies.py'} must define a dict named policies")
        try:
            app.set_policies(mapping)
        except ConfigError as error:
            raise AppLoadError(f"config/policies.py: {error}") from None
    routes_module = modules.get("routes")
    if routes_module is not None:
        routes = getattr(routes_module, "routes", None)
        if not isinstance(routes, dict):
            raise AppLoadError(f"{config_dir / 'routes.py'} must define a dict named routes")
        for spec, target in routes.items():
            try:
                app.route(spec, target)
            except ConfigError as error:
                path = config_dir / "routes.py"
                raise _pointing(f"config/routes.py: {error}", path, key_line(path, spec), None) from None
    bootstrap = modules.get("bootstrap")
    if bootstrap is not None:
        hook = getattr(bootstrap, "bootstrap", None)
        if not callable(hook):
            raise AppLoadError(f"{config_dir / 'bootstrap.py'} must define a function bootstrap(app)")
        app.on_lift(hook)
    return app


def _apply_environment(settings: Settings, config_dir: Path, package: str) -> None:
    """Apply ``config/env/<environment>.py`` over the settings read so far: each public name is a
    section, its value a dict of that section's settings. Other files in ``config/env/`` are left
    alone (they are for the other environment), except names no environment has, which are warned of."""
    env_dir = config_dir / "env"
    if not env_dir.is_dir():
        return
    for other in sorted(env_dir.glob("*.py")):
        if other.stem not in ENVIRONMENTS and not other.stem.startswith("_"):
            log.warning(
                "config/env/%s.py is ignored: the environments are %s (TRISAILS_ENV or --prod picks one)",
                other.stem, " and ".join(ENVIRONMENTS),
            )
    path = env_dir / f"{settings.environment}.py"
    if not path.is_file():
        return
    module = _import(f"{package}.config.env.{settings.environment}", path)
    where = f"config/env/{settings.environment}.py"
    sections = sorted(SECTIONS) + ["custom"]
    for section, values in _settings_of(module).items():
        if section not in sections:
            raise _pointing(
                f"{where}: {section!r} is not a section of the settings; the sections are {', '.join(sections)}",
                path, setting_line(path, section),
                "Each name in an environment file is a section holding a dict: sockets = {\"only_allow_origins\": [...]}.",
            )
        if not isinstance(values, dict):
            raise _pointing(
                f"{where}: {section} must be a dict of settings, like {section} = {{...}}; got {values!r}",
                path, setting_line(path, section), None,
            )
        if section == "custom":
            settings.custom.update(values)
            continue
        for setting, value in values.items():
            try:
                apply_section(getattr(settings, SECTIONS[section]), {setting: value}, source=f"{where} {section}")
            except ConfigError as error:
                raise _pointing(
                    str(error), path, dict_key_line(path, section, setting) or setting_line(path, section),
                    "Correct the setting (docs/reference/settings.md lists them all).",
                ) from None


def _pointing(message: str, path: Path, line: int | None, hint: str | None) -> AppLoadError:
    """An AppLoadError about ``path`` (at ``line`` when known), with that line as its excerpt."""
    return AppLoadError(
        message, file=str(path), line=line, excerpt=source_line(str(path), line) if line else None, hint=hint
    )


def _check_drivers(app: App, config_dir: Path) -> None:
    """The datastore URL and the drivers the settings need (psycopg2, the Redis client), checked
    before anything is opened, so a missing one is a clear load error, not a failed lift."""
    settings = app.settings
    from_env = bool(os.environ.get("TRISAILS_DATABASE_URL"))
    try:
        check_url(settings.datastores.url)
    except ConfigError as error:
        path = config_dir / "datastores.py"
        if from_env or not path.is_file():
            raise AppLoadError(f"TRISAILS_DATABASE_URL: {error}" if from_env else str(error)) from None
        raise _pointing(str(error), path, setting_line(path, "url"), None) from None
    try:
        check_redis(settings.sockets.redis_url)
    except ConfigError as error:
        raise AppLoadError(str(error)) from None


def _load_controllers(app: App, folder: Path, package: str) -> None:
    """Every public function defined in ``api/controllers/**/*.py`` becomes an action named after its
    file and itself: ``say.py``'s ``hello`` is ``say/hello``, ``admin/users.py``'s ``list`` is
    ``admin/users/list``. Helpers are kept out by a leading underscore or by living in another module."""
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*.py")):
        relative = path.relative_to(folder).with_suffix("")
        if any(part.startswith("_") for part in relative.parts):
            continue
        module = _import(f"{package}.api.controllers." + ".".join(relative.parts), path)
        prefix = "/".join(relative.parts)
        for name, value in vars(module).items():
            if name.startswith("_") or not callable(value) or isinstance(value, type):
                continue
            if getattr(value, "__module__", None) != module.__name__:
                continue  # imported, not defined here
            app.action(f"{prefix}/{name}", value)


def _load_policies(app: App, folder: Path, package: str) -> None:
    """Every public function defined in ``api/policies/**/*.py`` is a policy known by its own name."""
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*.py")):
        relative = path.relative_to(folder).with_suffix("")
        if any(part.startswith("_") for part in relative.parts):
            continue
        module = _import(f"{package}.api.policies." + ".".join(relative.parts), path)
        for name, value in vars(module).items():
            if name.startswith("_") or not callable(value) or isinstance(value, type):
                continue
            if getattr(value, "__module__", None) != module.__name__:
                continue
            if name in app.policies.known:
                raise AppLoadError(f"{path}: a policy named {name!r} is already defined in another file")
            app.policy(name, value)


def _load_models(app: App, folder: Path, package: str) -> None:
    """Every :class:`~trisails.Model` subclass defined in ``api/models/*.py`` becomes a model of the app."""
    from .orm.model import Model

    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        name = f"{package}.api.models.{path.stem}"
        module = sys.modules.get(name) or _import(name, path)  # another model file may have imported it
        for value in vars(module).items():
            declaration = value[1]
            if isinstance(declaration, type) and issubclass(declaration, Model) and declaration.__module__ == name:
                try:
                    app.model(declaration)
                except ConfigError as error:
                    raise _pointing(f"{path}: {error}", path, setting_line(path, declaration.__name__), None) from None


def _package(name: str, folder: Path) -> None:
    """Register ``name`` as the package whose modules live in ``folder`` (for relative imports)."""
    if name in sys.modules:
        return
    module = types.ModuleType(name, f"the trisails app folder {folder}")
    module.__path__ = [str(folder)]
    module.__package__ = name
    sys.modules[name] = module


def _import(name: str, path: Path) -> types.ModuleType:
    parent, _, _ = name.rpartition(".")
    root = name.split(".")[0]
    # every folder between the app's package and the module is a package too
    prefix, folder = root, Path(sys.modules[root].__path__[0]) if root in sys.modules else path.parent
    for part in parent.split(".")[1:]:
        prefix, folder = f"{prefix}.{part}", folder / part
        _package(prefix, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise AppLoadError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # so the folder's other modules import this very module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        app_folder = Path(sys.modules[name.split(".")[0]].__path__[0])
        raise describe_failure(error, path, app_folder) from error
    return module


def _settings_of(module: types.ModuleType) -> dict[str, Any]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)]
        names = [n for n in names if n != "annotations"]
    return {name: getattr(module, name) for name in names}
