"""Returning.AI's Access Key Embed (`TOKEN_PROVIDER=returningai-sdk`): an embed token per
visitor from the v2 API with the access pair, on a page with the Widget SDK's tag."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable
from typing import Final

from ...base import Parts, Vendor
from ...checking import Steps
from .check import check
from .settings import ReturningAISdkSettings
from .standin import ReturningAISdkStandIn
from .tokens import AccessKeyTokens, access_key_tokens

__all__ = ["PROVIDER", "AccessKeyTokens", "ReturningAISdkSettings", "ReturningAISdkStandIn"]


class ReturningAISdk:
    name: Final = "returningai-sdk"
    settings: Final = ReturningAISdkSettings
    check_email: Final = "the token step asks for a real embed token for this test user"
    anonymous: Final = None  # an embed token names its user

    def build(self, settings: ReturningAISdkSettings, parts: Parts) -> Vendor:
        tokens = access_key_tokens(
            settings, parts.http, hashes=parts.keys, lifetime=parts.lifetime, metrics=parts.metrics
        )
        # The template's names are part of WIDGET_TEMPLATE's contract: keep them.
        context = {
            "rai_element": settings.element,
            "rai_community_id": settings.community_id,
            "rai_widget_id": settings.widget_id,
            "rai_channel_id": settings.channel_id,
            "rai_api_url": settings.api_url,
            "rai_sdk_url": settings.sdk_url,
            "rai_sdk_integrity": settings.sdk_integrity,
            "rai_bundle_url": settings.bundle_url,
            "rai_width": settings.width,
            "rai_height": settings.height,
        }
        return Vendor(tokens, parts.loader_pages(self.name, context))

    def check(
        self, settings: ReturningAISdkSettings, steps: Steps, email: str | None
    ) -> Awaitable[None]:
        return check(settings, steps, email)

    def stand_in(self) -> ReturningAISdkStandIn:
        return ReturningAISdkStandIn(
            access_id="demo-access-" + secrets.token_hex(4),
            access_key="rai_ak_" + secrets.token_urlsafe(24),
            signing_key=secrets.token_urlsafe(32),
        )


PROVIDER: Final = ReturningAISdk()
