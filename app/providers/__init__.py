"""The vendors this proxy can serve, one folder each; `TOKEN_PROVIDER` picks one.

A new vendor is a new folder beside these (its settings, tokens, page source, check
steps and stand-in behind one `Provider`) and one line here.
"""

from __future__ import annotations

from typing import Any, Final

from ..cache.tokens import JwtLifetime, jwt_exp
from . import hissuno, neuroon, returningai
from .base import Parts, Provider, StandIn, Vendor, VendorSettings
from .returningai import sdk as returningai_sdk

__all__ = [
    "DEFAULT_PROVIDER",
    "PROVIDERS",
    "SHARED_ANONYMOUS",
    "JwtLifetime",
    "Parts",
    "Provider",
    "StandIn",
    "Vendor",
    "VendorSettings",
    "jwt_exp",
]

PROVIDERS: Final[dict[str, Provider[Any]]] = {
    p.name: p
    for p in (returningai.PROVIDER, returningai_sdk.PROVIDER, neuroon.PROVIDER, hissuno.PROVIDER)
}
DEFAULT_PROVIDER: Final = next(iter(PROVIDERS))  # TOKEN_PROVIDER when unset
# Whose anonymous visitors are served by default (ALLOW_ANONYMOUS unset): one shop token.
SHARED_ANONYMOUS: Final = tuple(name for name, p in PROVIDERS.items() if p.anonymous == "shared")
