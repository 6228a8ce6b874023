"""Shared fixtures: apps are lifted on 127.0.0.1 with an ephemeral port, inside the test's nursery."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.apps import reference_app


@pytest.fixture
async def reference_url() -> AsyncIterator[str]:
    """The base URL of a lifted ``examples/socketio_reference`` app."""
    app = reference_app()
    async with app.lifted() as url:
        yield url
