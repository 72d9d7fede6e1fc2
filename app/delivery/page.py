"""What the widget route serves: a page with one place for the token, from a source.

A vendor's `PageSource` says which paths it answers under `/widget`, which page a
request means, and hands that page over: from this process's memory without waiting
(`cached`), or after whatever it takes (`fetch`). Two kinds exist today: the vendor's
own page rewritten (`cache.PageCache` over `inject.split_page`), and a loader page
rendered here (`loader.TemplatePages`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, Protocol

COLORS: Final = ("light", "dark")
Color = Literal["light", "dark"]
DEFAULT_COLOR: Final[Color] = "light"


class Page(Protocol):
    def render(self, token: str) -> bytes:
        """The page's bytes with `token` in its one place, escaped for that place."""


class PageSource(Protocol):
    @property
    def paths(self) -> tuple[str, ...]:
        """The route paths it serves, `/widget` first (Starlette path syntax)."""

    def select(self, params: Mapping[str, str]) -> str:
        """Which page the route's path parameters mean; BadRequest or UnknownWidget if none."""

    def cached(self, page: str, color: Color) -> Page | None:
        """The page if it can be served now without waiting."""

    async def fetch(self, page: str, color: Color) -> Page: ...
