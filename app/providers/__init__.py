"""Token providers, one module per vendor, chosen by TOKEN_PROVIDER."""

from __future__ import annotations

from app.http import HttpClient
from app.providers.base import TokenEntry, TokenProvider
from app.providers.hissuno import HissunoProvider
from app.providers.neuroon import NeuroonProvider
from app.providers.returningai import ReturningAIProvider
from app.settings import Settings
from app.upstream import Upstream

__all__ = ["TokenEntry", "TokenProvider", "make_provider"]


def make_provider(settings: Settings, http: HttpClient, upstream: Upstream) -> TokenProvider:
    match settings.token_provider:
        case "neuroon":
            return NeuroonProvider(settings, http)
        case "hissuno":
            return HissunoProvider(settings)
        case "returningai":
            return ReturningAIProvider(settings, upstream)
