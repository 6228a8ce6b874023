"""What ``assets/`` serves: the public files put there, nothing hidden, nothing outside, and no
session cookie a shared cache could hand to many users."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from trisails import App
from trisails.client import connect


def app_with_assets(tmp_path: Path) -> App:
    """An app folder whose ``assets/`` holds what a careless deploy leaves there."""
    root = tmp_path / "app"
    assets = root / "assets"
    (assets / ".git").mkdir(parents=True)
    (assets / "js").mkdir()
    (assets / ".well-known").mkdir()
    (assets / "index.html").write_text("<!doctype html><title>chat</title>")
    (assets / "js" / "app.js").write_text("console.log('hi')")
    (assets / ".env").write_text("DATABASE_PASSWORD=hunter2")
    (assets / ".git" / "config").write_text("[remote] url = git@example.com:secret.git")
    (assets / ".well-known" / "security.txt").write_text("Contact: mailto:security@example.com")
    (tmp_path / "secrets.txt").write_text("outside assets")
    (assets / "leak.txt").symlink_to(tmp_path / "secrets.txt")
    (assets / "etc").symlink_to(tmp_path, target_is_directory=True)
    (assets / "alias.js").symlink_to(assets / "js" / "app.js")  # a link within assets/ is fine
    return App.load(root)


async def raw_get(url: str, target: str) -> bytes:
    """The status line of a GET for ``target`` exactly as written (no client normalizes the path)."""
    host, port = url.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        with trio.fail_after(5):
            data = b""
            while b"\r\n" not in data:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                data += chunk
    return data.split(b"\r\n", 1)[0]


async def test_dotfiles_in_assets_are_not_served(tmp_path: Path) -> None:
    """An attacker asks for the secrets a deploy left in assets/: /.env and /.git/config, spelled in
    every way a path can be spelled. Each is a 404; the ordinary files and /.well-known/ are served."""
    async with app_with_assets(tmp_path).lifted() as url, httpx.AsyncClient(base_url=url) as http:
        for path in ("/.env", "/.git/config", "/js/../.env", "/%2eenv", "/%2Egit/config", "/.git/", "/./.env"):
            response = await http.get(path)
            assert response.status_code == 404, path
            assert b"hunter2" not in response.content and b"secret.git" not in response.content, path
        for target in ("/.env", "/js/../.env", "/%2eenv", "/%2e%2e/assets/.env", "/js/%2e%2e/.git/config"):
            assert b" 404 " in await raw_get(url, target), target
        assert (await http.get("/js/app.js")).text == "console.log('hi')"
        assert (await http.get("/.well-known/security.txt")).status_code == 200


async def test_symlinks_out_of_assets_are_not_followed_unless_allowed(tmp_path: Path) -> None:
    """A symlink in assets/ that leads out of it (to a file, or to a whole folder) serves nothing; one
    that stays within assets/ works; the setting lets an app that means it follow them."""
    app = app_with_assets(tmp_path)
    async with app.lifted() as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/leak.txt")).status_code == 404
        assert (await http.get("/etc/secrets.txt")).status_code == 404
        assert (await http.get("/alias.js")).text == "console.log('hi')"
    app = app_with_assets(tmp_path / "again")
    app.settings.http.assets_symlinks_outside = True
    async with app.lifted() as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/leak.txt")).text == "outside assets"


async def test_no_static_answer_is_a_cacheable_answer_with_a_session_cookie(tmp_path: Path) -> None:
    """A shared cache in front of the app keeps what says ``Cache-Control: public``. A script or an
    image comes with no cookie; a page brings a new visitor its cookie (so its socket shares the
    session) and may not be kept by a shared cache. No answer has both a cookie and a public cache
    header, and the page's socket still shares the page's session."""
    app = app_with_assets(tmp_path)
    app.action("chat/count", lambda req, res: res.ok(req.session.__setitem__("n", req.session.get("n", 0) + 1) or req.session["n"]))
    async with app.lifted() as url, httpx.AsyncClient(base_url=url) as visitor:
        for path in ("/js/app.js", "/js/dependencies/sails.io.js", "/.well-known/security.txt", "/alias.js"):
            response = await visitor.get(path)
            assert response.status_code == 200, path
            assert "set-cookie" not in response.headers, path
            assert "public" in response.headers["cache-control"], path
        page = await visitor.get("/")
        assert "public" not in page.headers["cache-control"] and "private" in page.headers["cache-control"]
        assert "expires" not in page.headers
        cookie = page.headers["set-cookie"].split(";")[0]
        async with connect(url, headers={"cookie": cookie}) as socket:
            assert (await socket.get("/chat/count"))[0] == 1
        assert (await visitor.get("/chat/count", headers={"cookie": cookie})).json() == 2
