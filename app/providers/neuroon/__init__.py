"""Neuroon (`TOKEN_PROVIDER=neuroon`): one shop token for every visitor, signed here or
issued by Neuroon's API, handed to Neuroon's loader script on a page rendered here."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable
from typing import Final

from ..base import Parts, Vendor
from ..checking import Steps
from .check import check
from .settings import NeuroonSettings
from .standin import NeuroonStandIn
from .tokens import neuroon_tokens, shop_token

__all__ = ["PROVIDER", "NeuroonSettings", "NeuroonStandIn", "shop_token"]


class Neuroon:
    name: Final = "neuroon"
    settings: Final = NeuroonSettings
    check_email: Final = None  # one token for the whole shop: no user in it
    anonymous: Final = "shared"

    def build(self, settings: NeuroonSettings, parts: Parts) -> Vendor:
        # The template's names are part of WIDGET_TEMPLATE's contract: keep them.
        context = {
            "neuroon_script_url": settings.script_url,
            "neuroon_script_integrity": settings.script_integrity,
            "neuroon_shop_id": settings.shop_id,
            "neuroon_api_url": settings.api_url,
            "neuroon_theme": settings.theme,
            "neuroon_locale": settings.locale,
            "neuroon_position": settings.position,
        }
        tokens = neuroon_tokens(settings, parts.http, parts.metrics)
        return Vendor(tokens, parts.loader_pages(self.name, context))

    def check(self, settings: NeuroonSettings, steps: Steps, email: str | None) -> Awaitable[None]:
        return check(settings, steps, email)

    def stand_in(self) -> NeuroonStandIn:
        return NeuroonStandIn(shop_id="demo-shop", api_key="sk_" + secrets.token_hex(16))


PROVIDER: Final = Neuroon()
