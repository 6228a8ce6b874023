"""The compatibility stories share one thing: a Node process holding the real JavaScript clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.jsclient import JsDriver, open_js_driver


@pytest.fixture
async def js() -> AsyncIterator[JsDriver]:
    """The JS driver (socket.io-client 4.8.1, 2.0.3 and sails.io.js 1.2.1); every wait bounded to 5 s."""
    async with open_js_driver(timeout=5.0) as driver:
        yield driver


@pytest.fixture(params=["websocket", "polling", "upgrade"])
def transport(request: pytest.FixtureRequest) -> str:
    """Each client story runs over websocket, over polling, and upgraded from polling to websocket."""
    return request.param
