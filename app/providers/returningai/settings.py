"""Returning.AI's settings: where its widget server is, the key, and which widgets."""

from __future__ import annotations

from ...options import option, settings_group
from ...options import parsers as p
from ...secret import Secret
from .widgets import WIDGET_TYPES, Widget, widget_list, widget_type


@settings_group
class ReturningAISettings:
    base_url: str = option(
        "WIDGET_BASE_URL", None, "Upstream origin, e.g. https://prod-widgets.returning.ai", p.url
    )
    api_key: Secret = option(
        "WIDGET_API_KEY",
        None,
        "Server-only API key from the vendor; never sent to a browser",
        p.header_value,
    )
    api_key_next: Secret | None = option(
        "WIDGET_API_KEY_NEXT",
        "",
        "During a key rotation, the new key: tried once when the vendor refuses WIDGET_API_KEY",
        p.optional(p.header_value, empty=None),
    )
    community_id: str = option(
        "WIDGET_COMMUNITY_ID", None, "Community id used in the signin path", p.segment
    )
    widget_id: str = option("WIDGET_ID", None, "Default widget id", p.segment)
    widget_type: str = option(
        "WIDGET_TYPE", "store", f"Default widget type: {', '.join(WIDGET_TYPES)}", widget_type
    )
    widgets: tuple[Widget, ...] = option(
        "WIDGETS", "", "Extra widgets the proxy may serve, comma-separated type/id pairs",
        widget_list,
    )  # fmt: skip

    @property
    def default_widget(self) -> Widget:
        return Widget(self.widget_type, self.widget_id)

    @property
    def allowed_widgets(self) -> frozenset[Widget]:
        return frozenset((self.default_widget, *self.widgets))

    @property
    def key(self) -> tuple[str, Secret]:
        return "WIDGET_API_KEY", self.api_key

    def session_needs(self) -> tuple[str, ...]:
        return ()

    def problems(self) -> list[str]:
        return []
