"""Returning.AI (`TOKEN_PROVIDER=returningai`): a remote signin per user with the
server-only API key, and the vendor's own widget page rewritten with the token."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable
from typing import Final

from ..base import Parts, Vendor
from ..checking import Steps
from .api import returningai_api
from .check import check
from .pages import ReturningAIPages
from .settings import ReturningAISettings
from .standin import ReturningAIStandIn
from .tokens import ReturningAITokens
from .widgets import WIDGET_TYPES, Widget

__all__ = ["PROVIDER", "WIDGET_TYPES", "ReturningAISettings", "ReturningAIStandIn", "Widget"]


class ReturningAI:
    name: Final = "returningai"
    settings: Final = ReturningAISettings
    check_email: Final = "the signin and page steps sign this test user in at the vendor"
    anonymous: Final = None

    def build(self, settings: ReturningAISettings, parts: Parts) -> Vendor:
        api = returningai_api(settings, parts.http, parts.metrics)
        tokens = ReturningAITokens(
            api, keys=parts.keys, community_id=settings.community_id, lifetime=parts.lifetime
        )
        pages = ReturningAIPages(
            parts.page_cache(settings.base_url, api.page),
            default=settings.default_widget,
            allowed=settings.allowed_widgets,
        )
        return Vendor(tokens, pages)

    def check(
        self, settings: ReturningAISettings, steps: Steps, email: str | None
    ) -> Awaitable[None]:
        return check(settings, steps, email)

    def stand_in(self) -> ReturningAIStandIn:
        return ReturningAIStandIn(
            api_key="demo-" + secrets.token_urlsafe(24),
            community_id="demo-community",
            signing_key=secrets.token_urlsafe(32),
        )


PROVIDER: Final = ReturningAI()
