"""How a token reaches the browser, for providers without an upstream page to rewrite.

Returning.AI's page comes from the vendor and is rewritten (`app.cache.pages`); Neuroon
and Hissuno get a loader page rendered here from a Jinja2 template (built in, or
`WIDGET_TEMPLATE`). It is rendered once per colour at start-up with a sentinel in
place of the token and split around it, so serving it is a join: the token goes in
HTML-escaped, exactly as autoescaping would put it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Protocol

import jinja2
from markupsafe import escape

from app.pages import environment
from app.settings import Settings
from app.widgets import COLORS, Color, Widget

SENTINEL: Final = "\ue000widget-proxy-token\ue000"  # private use: nothing escapes it


class Page(Protocol):
    def render(self, token: str) -> bytes: ...


class Pages(Protocol):
    def cached(self, widget: Widget, color: Color) -> Page | None:
        """The page if it can be served now without waiting."""

    async def fetch(self, widget: Widget, color: Color) -> Page: ...


@dataclass(frozen=True, slots=True)
class TemplatePage:
    parts: tuple[bytes, ...]

    def render(self, token: str) -> bytes:
        return str(escape(token)).encode().join(self.parts)


class TemplatePages:
    def __init__(self, template: jinja2.Template, context: dict[str, Any]) -> None:
        self._pages: dict[str, TemplatePage] = {}
        for color in COLORS:
            html = template.render(**context, token=SENTINEL, color=color)
            if SENTINEL not in html:
                raise ValueError(f"the template {template.name} never shows {{{{ token }}}}")
            self._pages[color] = TemplatePage(tuple(p.encode() for p in html.split(SENTINEL)))

    def cached(self, widget: Widget, color: Color) -> TemplatePage:
        return self._pages[color]

    async def fetch(self, widget: Widget, color: Color) -> TemplatePage:
        return self._pages[color]


def loader_pages(settings: Settings) -> TemplatePages:
    """The loader page of the configured provider (neuroon or hissuno)."""
    if settings.widget_template is not None:
        source = settings.widget_template.read_text("utf-8")
        template = environment.from_string(source)
        template.name = str(settings.widget_template)
    else:
        template = environment.get_template(f"providers/{settings.token_provider}.html")
    context = {
        "neuroon_script_url": settings.neuroon_script_url,
        "neuroon_shop_id": settings.neuroon_shop_id,
        "hissuno_script_url": settings.hissuno_script_url,
        "hissuno_project_id": settings.hissuno_project_id,
    }
    return TemplatePages(template, context)
