"""Loading an app folder: Sails' conventions, in Python.

An app folder is sugar over the programmatic API; everything it declares can be declared in code::

    myapp/
      config/sockets.py     settings for app.settings.sockets (ping_interval = 25000, ...)
      config/http.py        settings for app.settings.http (port = 1337, ...)
      config/bootstrap.py   def bootstrap(app): ...  (sync or async) runs when the app lifts

A config module's settings are its public names (or its ``__all__``); a name the section does not know
is an error that lists the ones it does, so a typo never passes silently.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._config import Settings, apply_section
from ._errors import AppLoadError, ConfigError

if TYPE_CHECKING:
    from ._app import App

log = logging.getLogger("trisails")

#: config file → the Settings attribute it fills
SECTIONS = {"sockets": "sockets", "http": "http"}
HOOKS = {"bootstrap"}


def load_app(cls: type[App], folder: Path, *, environment: str | None = None) -> App:
    """Build an App of class ``cls`` from ``folder``; ``environment`` (or $TRISAILS_ENV) picks the mode."""
    folder = folder.resolve()
    if not folder.is_dir():
        raise AppLoadError(f"app folder {folder} does not exist")
    package = "_trisails_app_" + hashlib.sha1(str(folder).encode()).hexdigest()[:12]
    settings = Settings(environment=environment or os.environ.get("TRISAILS_ENV", "development"))  # type: ignore[arg-type]
    config_dir = folder / "config"
    modules: dict[str, types.ModuleType] = {}
    if config_dir.is_dir():
        for path in sorted(config_dir.glob("*.py")):
            if path.stem.startswith("_"):
                continue
            modules[path.stem] = _import(f"{package}.config.{path.stem}", path)
    for name, module in modules.items():
        if name in SECTIONS:
            try:
                apply_section(getattr(settings, SECTIONS[name]), _settings_of(module), source=f"config/{name}.py")
            except ConfigError as error:
                raise AppLoadError(str(error)) from None
        elif name not in HOOKS:
            log.warning("config/%s.py is not a known config file (known: %s); ignored", name, ", ".join(sorted(SECTIONS.keys() | HOOKS)))
    try:
        app = cls(settings, root=folder)
    except ConfigError as error:
        raise AppLoadError(f"{folder}: {error}") from None
    bootstrap = modules.get("bootstrap")
    if bootstrap is not None:
        hook = getattr(bootstrap, "bootstrap", None)
        if not callable(hook):
            raise AppLoadError(f"{config_dir / 'bootstrap.py'} must define a function bootstrap(app)")
        app.on_lift(hook)
    return app


def _import(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise AppLoadError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise AppLoadError(f"{path} failed to load: {error!r}") from error
    return module


def _settings_of(module: types.ModuleType) -> dict[str, Any]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)]
        names = [n for n in names if n != "annotations"]
    return {name: getattr(module, name) for name in names}
