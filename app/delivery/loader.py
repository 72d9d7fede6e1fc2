"""Loader pages: for vendors without a page of their own to rewrite, a page rendered
here that loads the vendor's script and hands it the token.

The template (built in, or `WIDGET_TEMPLATE`) is rendered once per colour at start-up
with a sentinel in place of the token and split around it, so serving it is a join:
the token goes in HTML-escaped, exactly as autoescaping would put it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jinja2
from markupsafe import escape

from ..rendering import environment
from .page import COLORS, Color

SENTINEL: Final = "\ue000widget-proxy-token\ue000"  # private use: nothing escapes it


@dataclass(frozen=True, slots=True)
class TemplatePage:
    parts: tuple[bytes, ...]

    def render(self, token: str) -> bytes:
        return str(escape(token)).encode().join(self.parts)


class TemplatePages:
    """A `PageSource` of one page, `/widget`, in each colour."""

    paths: Final = ("/widget",)

    def __init__(self, template: jinja2.Template, context: Mapping[str, Any]) -> None:
        self._pages: dict[str, TemplatePage] = {}
        for color in COLORS:
            html = template.render(**context, token=SENTINEL, color=color)
            if SENTINEL not in html:
                raise ValueError(f"the template {template.name} never shows {{{{ token }}}}")
            self._pages[color] = TemplatePage(tuple(p.encode() for p in html.split(SENTINEL)))

    def select(self, params: Mapping[str, str]) -> str:
        return ""

    def cached(self, page: str, color: Color) -> TemplatePage:
        return self._pages[color]

    async def fetch(self, page: str, color: Color) -> TemplatePage:
        return self._pages[color]


def loader_pages(
    name: str, context: Mapping[str, Any], *, override: Path | None = None
) -> TemplatePages:
    """The built-in template `providers/{name}.html`, or the merchant's file `override`."""
    if override is not None:
        template = environment.from_string(override.read_text("utf-8"))
        template.name = str(override)
    else:
        template = environment.get_template(f"providers/{name}.html")
    return TemplatePages(template, context)
