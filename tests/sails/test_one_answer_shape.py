"""One action, two transports, one answer: a page asking over HTTP and a socket asking the same action
get the same status and the same body, failures included, and the log names the action that failed."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

import trisails.client
from trisails import App, Request, Response, Settings


async def fetch_users() -> list[str]:
    return ["ann"]


def make_app(production: bool = False) -> App:
    app = App(Settings(environment="production" if production else "development"))
    if production:
        app.settings.session.secret = "a secret long enough for this test, and only for it"
        app.settings.sockets.only_allow_origins = ("*",)

    @app.action("users/forgot_await")
    async def forgot_await(req: Request, res: Response) -> None:
        return res.ok(fetch_users())  # type: ignore[arg-type]  # the mistake under test

    @app.action("users/returns_coroutine")
    async def returns_coroutine(req: Request, res: Response) -> Any:
        return fetch_users()  # the same mistake, in the return-a-value style

    @app.action("users/a_set")
    async def a_set(req: Request, res: Response) -> None:
        return res.ok({1, 2})

    @app.action("users/an_object")
    async def an_object(req: Request, res: Response) -> None:
        return res.ok({"who": object()})

    @app.action("users/fine")
    async def fine(req: Request, res: Response) -> None:
        return res.ok({"names": ("ann", "bob"), "count": 2})

    @app.action("users/raises")
    async def raises(req: Request, res: Response) -> None:
        raise ValueError("the action broke")

    return app


async def both(url: str, path: str) -> tuple[tuple[int, Any], tuple[int, Any], str]:
    """(status, body) over HTTP, the same over a socket, and the HTTP content type."""
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.get(path)
    content_type = response.headers.get("content-type", "")
    http_body = response.json() if content_type.startswith("application/json") else response.text
    async with trisails.client.connect(url, reconnection=False) as io:
        body, jwr = await io.get(path)
    return (response.status_code, http_body), (jwr.status_code, body), content_type


@pytest.mark.parametrize("path", ["/users/forgot_await", "/users/returns_coroutine"])
async def test_a_forgotten_await_is_the_same_json_500_on_both_transports_and_names_the_action(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    with caplog.at_level(logging.ERROR, logger="trisails.web"):
        async with app.lifted() as url:
            over_http, over_socket, content_type = await both(url, path)
    assert over_http == over_socket
    status, body = over_http
    assert status == 500 and content_type.startswith("application/json")
    assert body.startswith(f"The action {path.strip('/')} answered with coroutine fetch_users(): an await is missing")
    failures = [r.getMessage() for r in caplog.records if "an await is missing" in r.getMessage()]
    assert len(failures) == 2 and all(path.strip("/") in line for line in failures)


@pytest.mark.parametrize("path", ["/users/a_set", "/users/an_object"])
async def test_a_body_json_cannot_hold_is_the_same_json_500_on_both_transports(path: str, caplog: pytest.LogCaptureFixture) -> None:
    app = make_app()
    with caplog.at_level(logging.ERROR, logger="trisails.web"):
        async with app.lifted() as url:
            over_http, over_socket, content_type = await both(url, path)
    assert over_http == over_socket
    status, body = over_http
    assert status == 500 and content_type.startswith("application/json")
    assert body.startswith(f"The response body of the action {path.strip('/')} cannot be sent as JSON")
    assert any(path.strip("/") in r.getMessage() for r in caplog.records)


async def test_production_hides_the_details_the_same_way_on_both() -> None:
    app = make_app(production=True)
    async with app.lifted() as url:
        for path in ("/users/forgot_await", "/users/a_set", "/users/raises"):
            over_http, over_socket, _ = await both(url, path)
            assert over_http == over_socket == (500, "Internal Server Error"), path


async def test_good_answers_and_refusals_match_too() -> None:
    app = make_app()
    async with app.lifted() as url:
        assert (await both(url, "/users/fine"))[:2] == ((200, {"names": ["ann", "bob"], "count": 2}),) * 2
        assert (await both(url, "/no/such/thing"))[:2] == ((404, "Not Found"),) * 2
        over_http, over_socket, _ = await both(url, "/users/raises")
        assert over_http[0] == over_socket[0] == 500
        assert "ValueError: the action broke" in over_http[1] and "ValueError: the action broke" in over_socket[1]
