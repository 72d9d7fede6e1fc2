"""Hissuno (`TOKEN_PROVIDER=hissuno`): a user JWT signed here with the project's secret,
handed to Hissuno's widget on a loader page rendered here."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable
from typing import Final

from ..base import Parts, Vendor
from ..checking import Steps
from .check import check
from .settings import HissunoSettings
from .standin import HissunoStandIn
from .tokens import HissunoTokens

__all__ = ["PROVIDER", "HissunoSettings", "HissunoStandIn", "HissunoTokens"]


class Hissuno:
    name: Final = "hissuno"
    settings: Final = HissunoSettings
    check_email: Final = "the token step signs a user JWT for this test user"
    anonymous: Final = "tokenless"

    def build(self, settings: HissunoSettings, parts: Parts) -> Vendor:
        tokens = HissunoTokens(
            secret=settings.secret_key,
            keys=parts.keys,
            ttl=settings.token_ttl,
            margin=parts.lifetime.margin,
        )
        # The template's names are part of WIDGET_TEMPLATE's contract: keep them.
        context = {
            "hissuno_script_url": settings.script_url,
            "hissuno_project_id": settings.project_id,
            "hissuno_api_url": settings.api_url,  # "": the widget's own default
        }
        return Vendor(tokens, parts.loader_pages(self.name, context))

    def check(self, settings: HissunoSettings, steps: Steps, email: str | None) -> Awaitable[None]:
        return check(settings, steps, email)

    def stand_in(self) -> HissunoStandIn:
        secret = "sk_live_" + secrets.token_urlsafe(24)[:32]
        return HissunoStandIn(project_id="demo-project", secret_key=secret)


PROVIDER: Final = Hissuno()
