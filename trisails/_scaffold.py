"""``python -m trisails new`` and ``python -m trisails generate``: Sails' ``sails new`` and ``sails generate``.

``new NAME`` copies the skeleton in ``trisails/skeleton/`` (a model, a controller, a live page, the
config files and a test that lifts the app) into a new folder. ``generate`` adds one file, or one
action to a controller, to an existing app folder. Neither ever overwrites: a file or a name that is
already there is a :class:`ScaffoldError` saying which and what to do instead.

Skeleton files whose names end in ``.tmpl`` lose that suffix when copied (it keeps them out of mypy
and pytest while they live in the package); ``__APP_NAME__`` in a file becomes the app's name.
"""

from __future__ import annotations

import ast
import keyword
import re
from dataclasses import dataclass
from pathlib import Path

from ._errors import TrisailsError

__all__ = ["KINDS", "ScaffoldError", "generate", "new_app"]

SKELETON = Path(__file__).parent / "skeleton"
#: skeleton names that are written under another name (package data leaves dotfiles out)
RENAMED = {"gitignore": ".gitignore"}
#: what ``generate`` makes
KINDS = ("model", "controller", "action", "policy")

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


class ScaffoldError(TrisailsError):
    """``new`` or ``generate`` refused to write: the message says what is in the way, :attr:`hint` what to do."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class Written:
    """A file ``new`` or ``generate`` wrote (or added to), and what it holds, for the command's report."""

    path: Path
    what: str


def new_app(target: Path) -> list[Written]:
    """Create the app folder ``target`` from the skeleton; its last path part is the app's name.

    Refuses a ``target`` that exists and is not an empty folder, so nothing is ever overwritten."""
    name = target.name
    if not name or name in (".", ".."):
        raise ScaffoldError(f"{target} does not name a new folder", "Give the new app's folder: python -m trisails new myapp")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ScaffoldError(
            f"{target} already exists and is not empty; new never writes over files",
            "Choose another name, or remove that folder first.",
        )
    written: list[Written] = []
    for source in sorted(p for p in SKELETON.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        relative = source.relative_to(SKELETON)
        filename = RENAMED.get(relative.name, relative.name.removesuffix(".tmpl"))
        destination = target / relative.parent / filename
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(source.read_text().replace("__APP_NAME__", name))
        written.append(Written(destination, ""))
    return written


def generate(kind: str, name: str, folder: Path, actions: list[str] | None = None) -> list[Written]:
    """Add a ``model``, ``controller``, ``action`` or ``policy`` named ``name`` to the app ``folder``.

    ``actions`` are the actions a new controller starts with. Names are given as you like them
    (``blog-post``, ``BlogPost``, ``blog_post``) and written the Python way: ``api/models/blog_post.py``
    with ``class BlogPost``; an action is ``controller/action`` (``user/sign_up``)."""
    if not (folder / "api").is_dir() and not (folder / "config").is_dir():
        raise ScaffoldError(
            f"{folder} is not an app folder (it has neither api/ nor config/)",
            "Run generate inside the app's folder, or name it with --app; make a new one with: python -m trisails new myapp",
        )
    if kind == "model":
        return [_model(name, folder)]
    if kind == "controller":
        return [_controller(name, folder, actions or [])]
    if kind == "action":
        return [_action(name, folder)]
    if kind == "policy":
        return [_policy(name, folder)]
    raise ScaffoldError(f"cannot generate {kind!r}", f"Generate one of: {', '.join(KINDS)}.")


def snake(word: str, what: str) -> str:
    """``word`` as a Python snake_case identifier (``BlogPost``, ``blog-post`` → ``blog_post``), or a
    :class:`ScaffoldError` saying why it cannot be a ``what``'s name."""
    if not _WORD.fullmatch(word):
        raise ScaffoldError(
            f"{word!r} cannot be a {what}'s name: use letters, digits, '_' or '-', starting with a letter",
            None,
        )
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", word).replace("-", "_")
    result = re.sub(r"_+", "_", spaced).lower()
    if keyword.iskeyword(result):
        raise ScaffoldError(f"{word!r} cannot be a {what}'s name: {result!r} is a Python keyword", "Choose another name.")
    return result


def pascal(word: str, what: str) -> str:
    """``word`` as a class name: ``blog_post`` → ``BlogPost``."""
    return "".join(part.capitalize() for part in snake(word, what).split("_"))


def _refuse_existing(path: Path, folder: Path) -> None:
    if path.exists():
        raise ScaffoldError(
            f"{path.relative_to(folder)} already exists; generate never writes over a file",
            "Edit that file, or choose another name.",
        )


def _model(name: str, folder: Path) -> Written:
    module, cls = snake(name, "model"), pascal(name, "model")
    if cls == "Model":
        raise ScaffoldError("a model cannot be named Model (the class it derives from)", "Choose another name.")
    path = folder / "api" / "models" / f"{module}.py"
    _refuse_existing(path, folder)
    for other in sorted((folder / "api" / "models").glob("*.py")):
        if cls in _top_level_names(other):
            raise ScaffoldError(
                f"api/models/{other.name} already defines {cls}", "Edit that model, or choose another name."
            )
    identity = cls.lower()
    text = f'''"""{cls}: the blueprint routes (GET /{identity}, POST /{identity}, PATCH /{identity}/:id, ...) and
its socket messages come with the model. Attributes: docs/howto/models.md."""

from trisails import Model, Optional, Required


class {cls}(Model):
    name = Required(str)
    notes = Optional(str)
'''
    return _write(path, text, f"the model {cls} (routes /{identity}, socket event {identity!r})")


def _controller(name: str, folder: Path, actions: list[str]) -> Written:
    parts = [snake(part, "controller") for part in name.split("/")]
    path = folder / "api" / "controllers" / Path(*parts).with_suffix(".py")
    _refuse_existing(path, folder)
    prefix = "/".join(parts)
    functions = [snake(action, "action") for action in actions]
    duplicates = sorted({f for f in functions if functions.count(f) > 1})
    if duplicates:
        raise ScaffoldError(f"the action {duplicates[0]!r} is named twice", "Name each action once.")
    body = "".join(_action_text(prefix, function) for function in functions)
    if not functions:
        body = f"\n\n# async def hello(req: Request, res: Response) -> None:   # the action {prefix}/hello\n#     return res.ok()\n"
    text = f'''"""The actions of {prefix}: each public function is the action {prefix}/<function>, with a route of
its own at /{prefix}/<function> (docs/howto/actions-and-routes.md)."""

from trisails import Request, Response
{body}'''
    listed = ", ".join(f"{prefix}/{f}" for f in functions) or "no actions yet"
    return _write(path, text, f"the controller {prefix} ({listed})")


def _action(name: str, folder: Path) -> Written:
    parts = name.split("/")
    if len(parts) < 2:
        raise ScaffoldError(
            f"an action is named controller/action, like 'say/hello'; got {name!r}",
            f"Say which controller it belongs to: python -m trisails generate action say/{name}",
        )
    controller = [snake(part, "controller") for part in parts[:-1]]
    function = snake(parts[-1], "action")
    path = folder / "api" / "controllers" / Path(*controller).with_suffix(".py")
    prefix = "/".join(controller)
    if not path.exists():
        return _controller(prefix, folder, [function])
    names = _top_level_names(path)
    if function in names:
        raise ScaffoldError(
            f"{path.relative_to(folder)} already defines {function}; generate never writes over code",
            "Edit that function, or choose another name.",
        )
    existing = path.read_text()
    needs = "" if {"Request", "Response"} <= names else "\nfrom trisails import Request, Response\n"
    with path.open("a") as out:
        out.write(("" if existing.endswith("\n") else "\n") + needs + _action_text(prefix, function))
    return Written(path, f"the action {prefix}/{function}, added to its controller")


def _action_text(prefix: str, function: str) -> str:
    return f'''

async def {function}(req: Request, res: Response) -> None:
    """The action {prefix}/{function}, at /{prefix}/{function} over HTTP and sockets."""
    return res.ok({{"action": "{prefix}/{function}"}})
'''


def _policy(name: str, folder: Path) -> Written:
    function = snake(name, "policy")
    path = folder / "api" / "policies" / f"{function}.py"
    _refuse_existing(path, folder)
    policies = folder / "api" / "policies"
    for other in sorted(policies.rglob("*.py")) if policies.is_dir() else []:
        if function in _top_level_names(other):
            raise ScaffoldError(
                f"{other.relative_to(folder)} already defines the policy {function}", "Choose another name."
            )
    text = f'''"""The policy {function}: it lets a request through by returning without answering, and stops it by
answering (res.forbidden()). Say which actions it guards in config/policies.py (docs/howto/policies.md)."""

from trisails import Request, Response


async def {function}(req: Request, res: Response) -> None:
    if req.session is None or not req.session.get("user"):
        return res.forbidden()
'''
    return _write(path, text, f"the policy {function} (guard actions with it in config/policies.py)")


def _write(path: Path, text: str, what: str) -> Written:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("x") as out:  # "x": never over a file that appeared meanwhile
        out.write(text)
    return Written(path, what)


def _top_level_names(path: Path) -> set[str]:
    """The functions, classes and assigned names at the top of the module ``path`` (empty when unreadable)."""
    try:
        tree = ast.parse(path.read_text(), str(path))
    except (OSError, SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name.split(".")[0]) for a in node.names)
    return names
