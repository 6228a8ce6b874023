"""Fixtures for the browser-client tests: a headless Chromium (Playwright) and a trisails app beside it.

How the two event loops are kept apart
--------------------------------------
Playwright's Python API runs on asyncio (its *sync* API hides an asyncio loop behind greenlets), and
trisails runs on trio; the two cannot share a loop. So these tests are plain synchronous tests:

- the **browser** is driven from the test's own (main) thread with Playwright's sync API. Playwright
  objects belong to the thread that created them, so they never leave it;
- the **server** is a trisails :class:`~trisails.App` lifted by :class:`LiveApp` in a background thread
  that runs its own ``trio.run``. The test talks to it only through :meth:`LiveApp.call`, which runs a
  function on the trio thread (``trio.from_thread.run_sync``) and returns its result, so socket and
  room state is only ever touched by its own loop.

Everything waits with a bound: Playwright calls time out after :data:`WAIT` seconds (the page helpers in
the tests bound their promises too), and :meth:`LiveApp.wait_until` polls server-side state with a
deadline, so a broken client fails a test instead of hanging the suite.

The browser is Debian's ``chromium`` package (``/usr/bin/chromium``, or the path in
``TRISAILS_TEST_CHROMIUM``), launched by the ``playwright`` Python package; ``playwright install`` is
never needed. ``scripts/test.sh`` installs both; without either, these tests fail and say what to install
(a skipped browser test would pass off an untested client as green).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
import trio

from trisails import App

CHROMIUM = os.environ.get("TRISAILS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT = 5.0
"""Seconds any single wait may take (a page call, a server-side condition)."""

T = TypeVar("T")


class LiveApp:
    """A trisails app served by a background thread with its own trio loop.

    ``with LiveApp(app) as live:`` lifts it on 127.0.0.1 (an ephemeral port, ``live.url``) and lowers it
    on exit. :meth:`restart` lowers it and lifts it again on the same port, as a deploy would.
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self.url = ""
        self._token: trio.lowlevel.TrioToken | None = None
        self._thread = threading.Thread(target=self._run, name="trisails-live-app", daemon=True)
        self._lifted = threading.Event()
        self._stop: trio.Event | None = None
        self._stopping = False
        self._down_for = 0.0
        self._error: BaseException | None = None

    def __enter__(self) -> LiveApp:
        self._thread.start()
        self._wait_lifted()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping = True
        if self._thread.is_alive() and self._stop is not None:
            self.call(self._stop.set)
        self._thread.join(timeout=10)
        if self._error is not None:
            raise RuntimeError("the app's thread failed") from self._error
        assert not self._thread.is_alive(), "the app did not stop within 10 s"

    def _run(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as error:  # reported by __exit__, or by the wait that notices it
            self._error = error
            self._lifted.set()

    async def _serve(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        port = 0
        while True:
            self._stop = trio.Event()
            async with self.app.lifted(port=port) as url:
                self.url = url
                port = int(url.rsplit(":", 1)[1])
                self._lifted.set()
                await self._stop.wait()
            if self._stopping:
                return
            await trio.sleep(self._down_for)

    def _wait_lifted(self) -> None:
        assert self._lifted.wait(WAIT), "the app did not lift"
        if self._error is not None:
            raise RuntimeError("the app could not lift") from self._error

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the app's trio thread and return what it returns."""
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run the async ``fn(*args)`` on the app's trio thread, wait for it, and return its result."""
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    def restart(self, down_for: float = 0.0) -> None:
        """Lower the app (websockets close with 1001, as on shutdown) and lift it again on the same port."""
        assert self._stop is not None
        self._down_for = down_for
        self._lifted.clear()
        self.call(self._stop.set)
        self._wait_lifted()

    @staticmethod
    def wait_until(condition: Callable[[], T], what: str, timeout: float = WAIT) -> T:
        """Poll ``condition()`` until it returns something truthy; fail the test after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.02)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module (each test gets a fresh context from :func:`page`)."""
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("the playwright package is not installed: run bash scripts/test.sh (pip install playwright)")
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: run bash scripts/test.sh (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A new page in its own browser context; an uncaught error in the page fails the test."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(WAIT * 1000)
    errors: list[str] = []
    console: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}\nconsole:\n" + "\n".join(console)
