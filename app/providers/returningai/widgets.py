"""Which Returning.AI widgets exist and which of them this proxy may serve.

The upstream URL of a page is built only from these values, never from what the
browser sends, so a request can't make the proxy fetch anything else (no SSRF).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ...options.parsers import is_segment, shown

WIDGET_TYPES: Final = ("store", "channel", "milestone", "social", "currency", "minigames")


@dataclass(frozen=True, slots=True)
class Widget:
    type: str
    id: str

    @property
    def path(self) -> str:
        return f"/{self.type}/{self.id}"

    @classmethod
    def parse(cls, pair: str) -> Widget:
        """Read a `type/id` pair, raising ValueError with a reader-facing reason."""
        kind, sep, ident = pair.strip().partition("/")
        if not sep:
            raise ValueError(f"{pair!r} is not a type/id pair")
        if kind not in WIDGET_TYPES:
            raise ValueError(f"{kind!r} is not a widget type ({', '.join(WIDGET_TYPES)})")
        if not is_segment(ident):
            raise ValueError(f"{ident!r} is not a valid widget id")
        return cls(kind, ident)


def widget_type(raw: str) -> str:
    if raw.strip() not in WIDGET_TYPES:
        raise ValueError(f"{shown(raw)} is not one of {', '.join(WIDGET_TYPES)}")
    return raw.strip()


def widget_list(raw: str) -> tuple[Widget, ...]:
    return tuple(Widget.parse(pair) for pair in raw.split(",") if pair.strip())
