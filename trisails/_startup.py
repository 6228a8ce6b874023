"""Startup failures as one clear message: what went wrong, where in the app folder, and what to do.

A mistake in an app folder (a syntax error, an import of something not installed, a misspelled name,
a model Pony cannot map, a setting of the wrong kind) must not reach the user as a 60-line nested
traceback. The loader turns each into an :class:`~trisails.AppLoadError` carrying the file and line
it points at, the offending source line and a hint; ``python -m trisails`` prints it as::

    trisails: api/controllers/say.py failed to load: SyntaxError: expected ':' (api/controllers/say.py:3)
        async def hello(req, res)
                                 ^
      Fix the syntax on that line, then start the app again.

and exits with status 2. With ``--log-level debug`` the full traceback is printed first.
"""

from __future__ import annotations

import ast
import errno
import linecache
import os
import traceback
from pathlib import Path

from ._errors import AppLoadError
from .realtime import _serving

__all__ = ["describe_failure", "dict_key_line", "format_problem", "key_line", "listen_problem", "locate", "setting_line", "show_path", "source_line"]


def show_path(path: str | Path) -> str:
    """``path`` relative to the current directory when it is under it (shorter, still clickable)."""
    try:
        return os.path.relpath(path) if Path(path).resolve().is_relative_to(Path.cwd()) else str(path)
    except (OSError, ValueError):
        return str(path)


def source_line(file: str, line: int) -> str | None:
    """The text of ``file``'s line ``line``, without its newline, or ``None``."""
    text = linecache.getline(file, line)
    return text.strip() if text.strip() else None


def locate(error: BaseException, folder: Path) -> tuple[str | None, int | None]:
    """The deepest frame of ``error``'s traceback that runs a file of the app ``folder``: the line of
    the app that led to the error (the frames inside trisails, Pony or the standard library say less)."""
    if isinstance(error, SyntaxError) and error.filename and error.lineno:
        return error.filename, error.lineno
    found: tuple[str | None, int | None] = (None, None)
    root = str(folder.resolve())
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename.startswith(root + os.sep):
            found = (frame.filename, frame.lineno)
    return found


def describe_failure(error: BaseException, path: Path, folder: Path) -> AppLoadError:
    """An :class:`AppLoadError` for a module of the app folder (``path``) that raised ``error`` as it
    was imported: the error in words, where it points, and what to do."""
    file, line = locate(error, folder)
    if file is None:
        file, line = str(path), None
    excerpt = source_line(file, line) if line else None
    kind = type(error).__name__
    hint: str | None
    if isinstance(error, SyntaxError):
        what = f"{kind}: {error.msg}"
        excerpt = _caret(error) or excerpt
        hint = "Fix the syntax on that line, then start the app again."
    elif isinstance(error, ModuleNotFoundError):
        what = f"{kind}: {error}"
        missing = (error.name or "").split(".")[0]
        hint = (
            f"Install it in this environment (pip install {missing}) or correct the import."
            if missing
            else "Install the missing module or correct the import."
        )
    elif isinstance(error, ImportError):
        what = f"{kind}: {error}"
        hint = "Check the name imported and the module it is imported from."
    elif isinstance(error, NameError):
        what = f"{kind}: {error}"
        hint = "Define that name, import it, or correct its spelling."
    else:
        what = f"{kind}: {error}" if not _speaks_for_itself(error) else str(error)
        hint = getattr(error, "hint", None)
    return AppLoadError(f"{show_path(path)} failed to load: {what}", file=file, line=line, excerpt=excerpt, hint=hint)


def _speaks_for_itself(error: BaseException) -> bool:
    """trisails' own errors are written to be read as they are; others need their class name."""
    from ._errors import TrisailsError

    return isinstance(error, TrisailsError)


def _caret(error: SyntaxError) -> str | None:
    """The line of a syntax error with a caret (or a run of them) under the spot Python points at."""
    if not error.text:
        return None
    text = error.text.rstrip("\n")
    stripped = text.lstrip()
    indent = len(text) - len(stripped)
    start = max((error.offset or 1) - 1 - indent, 0)
    end = error.end_offset - 1 - indent if error.end_offset and error.end_offset > (error.offset or 0) else start + 1
    if (error.end_lineno or error.lineno) != error.lineno:
        end = start + 1
    return f"{stripped}\n{' ' * start}{'^' * max(end - start, 1)}"


def setting_line(path: Path, name: str) -> int | None:
    """The line of the assignment to ``name`` at the top level of the config module ``path``."""
    try:
        tree = ast.parse(path.read_text(), str(path))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return node.lineno
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if any((alias.asname or alias.name.split(".")[0]) == name for alias in node.names):
                return node.lineno
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return node.lineno
    return None


def dict_key_line(path: Path, name: str, key: str) -> int | None:
    """The line of the string ``key`` in the dict literal assigned to ``name`` at the top of ``path``
    (``sockets = {"ping_interval": ...}`` in an environment file)."""
    try:
        tree = ast.parse(path.read_text(), str(path))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            if any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                for k in node.value.keys:
                    if isinstance(k, ast.Constant) and k.value == key:
                        return k.lineno
    return None


def key_line(path: Path, key: str) -> int | None:
    """The line where the string ``key`` is a key of a dict literal in the module ``path`` (a route)."""
    try:
        tree = ast.parse(path.read_text(), str(path))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for k in node.keys:
                if isinstance(k, ast.Constant) and k.value == key:
                    return k.lineno
    return None


def listen_problem(error: OSError, host: str, port: int) -> tuple[str, str] | None:
    """What a failure to listen on ``host:port`` means and what to do, or ``None`` if it is not one."""
    where = f"{host}:{port}"
    if error.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {where}: the port is already in use (another trisails, or another program, listens there)",
            f"Stop that program, or choose another port: --port {port + 1 if port else 1338} (or port in config/http.py).",
        )
    if error.errno == errno.EACCES:
        return (
            f"cannot listen on {where}: permission denied (ports below 1024 need privileges)",
            "Choose a port above 1023 (--port 1337), and put a proxy in front for port 80 or 443.",
        )
    if error.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or _serving.is_lookup_error(error):
        return (
            f"cannot listen on {where}: {error.strerror or error}",
            "Give an address of this machine with --host (127.0.0.1 for this machine only, 0.0.0.0 for every interface).",
        )
    return None


def format_problem(error: AppLoadError) -> str:
    """The lines ``python -m trisails`` prints for ``error``: ``trisails: <what> (<file>:<line>)``,
    then the source excerpt, indented, then the hint."""
    head = f"trisails: {error}"
    if error.file is not None:
        head += f" ({show_path(error.file)}{f':{error.line}' if error.line else ''})"
    lines = [head]
    if error.excerpt:
        lines += ["    " + part for part in error.excerpt.splitlines()]
    if error.hint:
        lines.append("  " + error.hint)
    return "\n".join(lines)
