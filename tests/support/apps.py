"""Apps the tests serve: the reference example, with settings a test may tighten."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trisails import App
from trisails._config import apply_section

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def reference_app(**sockets: Any) -> App:
    """``examples/socketio_reference`` (echo, ack, auth on ``/`` and ``/custom``), with socket overrides."""
    app = App.load(EXAMPLES / "socketio_reference")
    apply_section(app.settings.sockets, sockets, source="test")
    app.settings.validate()
    return app
