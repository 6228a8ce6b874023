"""Server-rendered pages: Sails' views, with Jinja2 templates.

``res.view("homepage", user=user)`` renders ``views/homepage.html`` with the locals given, plus what
Sails gives every view: ``req``, ``session``, ``sails`` and, with CSRF protection on, ``_csrf``. The
page is then put in the layout (``views/layouts/layout.html`` by default), as its ``body``, the way
Sails wraps a view in ``layouts/layout.ejs``. A route may target a view directly:
``{"GET /": {"view": "homepage"}}``.

One Jinja2 environment per app, made on first use; templates are HTML-escaped unless marked safe
(``{{ body }}`` in a layout is already safe), and in development a template edited on disk is read
again on its next use.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup

from .._errors import TrisailsError
from .security import csrf_token

if TYPE_CHECKING:
    from .._app import App
    from .request import Request, Response

__all__ = ["ViewNotFound", "Views", "view_action"]

EXTENSION = ".html"
#: the layout every view is put in unless ``views.layout`` says otherwise; its absence is not an error
DEFAULT_LAYOUT = "layouts/layout"


class ViewNotFound(TrisailsError):
    """``res.view(name)`` (or a route to a view, or the layout) names a template that is not in the
    views folder: the message says which file was looked for, and where."""


class Views:
    """The templates of one app: where they are, and the Jinja2 environment that renders them."""

    def __init__(self, folder: Path, *, layout: str, production: bool) -> None:
        self.folder = folder
        self.layout = layout
        self.environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(folder)),
            autoescape=jinja2.select_autoescape(("html", "htm", "xml")),
            auto_reload=not production,
        )
        """The Jinja2 environment: add filters and globals to it (``app.views.environment.filters``)."""

    def render(self, name: str, context: dict[str, Any], *, layout: str | bool | None = None) -> str:
        """``views/<name>.html`` rendered with ``context``, inside the layout: ``layout`` names another
        one, ``False`` (or ``""``) renders the view alone, ``None`` uses the app's (``views.layout``)."""
        page = self._template(name, what="view").render(context)
        chosen = self.layout if layout is None or layout is True else layout
        if not chosen:
            return page
        if layout is None and chosen == DEFAULT_LAYOUT and not (self.folder / f"{chosen}{EXTENSION}").is_file():
            return page  # the default layout, and no file for it: the view is the whole page
        return self._template(chosen, what="layout").render({**context, "body": Markup(page)})

    def _template(self, name: str, *, what: str) -> jinja2.Template:
        file = name.strip("/") + EXTENSION
        try:
            return self.environment.get_template(file)
        except jinja2.TemplateNotFound as error:
            if error.name != file:
                raise  # a template this one includes or extends: Jinja's message names it
            raise ViewNotFound(
                f"the {what} {name!r} was looked for as {self.folder / file}, which does not exist"
                + (" (set views.layout = '' in config/views.py for no layout)" if what == "layout" else "")
            ) from None


def views_of(app: App) -> Views:
    """The app's :class:`Views`, made on first use from its settings."""
    views = app._views
    if views is None:
        folder = Path(app.settings.views.folder)
        if not folder.is_absolute() and app.root is not None:
            folder = app.root / folder
        views = Views(folder, layout=app.settings.views.layout, production=app.settings.production)
        app._views = views
    return views


def render_view(req: Request, res: Response, name: str | None, layout: str | bool | None, values: dict[str, Any]) -> None:
    """What ``res.view`` does: render, and answer 200 with the HTML."""
    if name is None:
        if not req.action:
            raise ViewNotFound("res.view() without a name renders the view named after the action, and there is none")
        name = req.action
    context: dict[str, Any] = {"req": req, "session": req.session, "sails": _sails(), **values}
    if req.app.settings.security.csrf and req.session is not None and "_csrf" not in context:
        context["_csrf"] = csrf_token(req)
    html = views_of(req.app).render(name, context, layout=layout)
    if res.header("content-type") is None:
        res.set("content-type", "text/html; charset=utf-8")
    res.send(html)


def view_action(name: str, values: dict[str, Any] | None = None) -> Any:
    """The action behind a route that targets a view: ``{"GET /": {"view": "homepage", "locals": {...}}}``."""
    fixed = dict(values or {})

    async def show_view(req: Request, res: Response) -> None:
        res.view(name, **fixed)

    show_view.__qualname__ = f"view {name}"
    return show_view


def _sails() -> Any:
    from .._current import sails

    return sails
