"""The public surface: small, exported on purpose, documented, and type-checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import trisails
import trisails.client

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = "\n".join(path.read_text() for path in (ROOT / "docs").rglob("*.md"))


def test_every_public_name_is_exported_on_purpose_and_documented() -> None:
    for module in (trisails, trisails.client):
        exported = set(module.__all__)
        assert exported == {name for name in vars(module) if not name.startswith("_") and name in exported}
        for name in exported:
            assert getattr(module, name) is not None
            assert f"`{name}" in REFERENCE or f"{name}(" in REFERENCE, f"{module.__name__}.{name} is not in docs/"


def test_internals_stay_internal() -> None:
    public_modules = {"trisails", "trisails.client", "trisails.protocol", "trisails.sockets", "trisails.testing"}
    for name in list(sys.modules):
        if name.startswith("trisails.") and name not in public_modules:
            last = name.rsplit(".", 1)[1]
            # internal modules are underscored, or live in a package whose docs say it is internal
            assert last.startswith("_") or name.split(".")[1] in {"protocol", "realtime", "web", "client", "orm"}, name


def test_the_package_type_checks() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "trisails", "--ignore-missing-imports"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
