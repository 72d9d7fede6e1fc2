"""Returning.AI's own widget pages, by type and id, rewritten with the token."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from ...cache.pages import PageCache
from ...delivery.inject import SplitPage
from ...delivery.page import Color
from ...errors import BadRequest, UnknownWidget
from .widgets import WIDGET_TYPES, Widget


class ReturningAIPages:
    """`/widget` is the default widget; `/widget/{type}/{id}` any other configured one."""

    paths: Final = ("/widget", "/widget/{type}/{id}")

    def __init__(self, cache: PageCache, *, default: Widget, allowed: frozenset[Widget]) -> None:
        self._cache = cache
        self._default = default.path
        self._allowed = frozenset(w.path for w in allowed)

    def select(self, params: Mapping[str, str]) -> str:
        if not params:
            return self._default
        if params["type"] not in WIDGET_TYPES:
            raise BadRequest(f"unknown widget type {params['type'][:40]!r}")
        path = Widget(params["type"], params["id"]).path
        if path not in self._allowed:
            raise UnknownWidget(f"widget {path[:80]!r} is not configured")
        return path

    def cached(self, page: str, color: Color) -> SplitPage | None:
        return self._cache.cached(page, color)

    async def fetch(self, page: str, color: Color) -> SplitPage:
        return await self._cache.fetch(page, color)
