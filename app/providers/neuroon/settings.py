"""Neuroon's settings: the shop, its key, and how shop tokens are made."""

from __future__ import annotations

from typing import Final, Literal

from ...options import Secret, option, settings_group
from ...options import parsers as p

# Neuroon accepts a shop token for 24 h after its timestamp, and it can't be renewed.
TOKEN_LIFETIME: Final = 24 * 3600


@settings_group
class NeuroonSettings:
    shop_id: str = option("NEUROON_SHOP_ID", None, "Neuroon shop id", p.segment)
    api_key: Secret = option(
        "NEUROON_API_KEY",
        None,
        "Neuroon shop API key: sk_ and 32 lowercase hex characters",
        p.secret_matching(r"sk_[0-9a-f]{32}", "sk_ followed by 32 lowercase hex digits"),
    )
    token_mode: Literal["local", "remote"] = option(
        "NEUROON_TOKEN_MODE",
        "local",
        "local: the proxy signs shop tokens itself; remote: it asks NEUROON_API_URL",
        p.choice("local", "remote"),
    )
    api_url: str = option(
        "NEUROON_API_URL",
        "",
        "Neuroon API origin, for NEUROON_TOKEN_MODE=remote",
        p.optional(p.url),
    )
    rotate_after: float = option(
        "NEUROON_ROTATE_AFTER",
        "82800",
        "Seconds after which a shop token (valid 24 h) is re-issued",
        p.positive(float),
    )
    script_url: str = option(
        "NEUROON_SCRIPT_URL", None, "URL of Neuroon's widget loader script", p.url
    )

    @property
    def key(self) -> tuple[str, Secret]:
        return "NEUROON_API_KEY", self.api_key

    def problems(self) -> list[str]:
        found = []
        if self.token_mode == "remote" and not self.api_url:  # noqa: S105
            found.append("NEUROON_API_URL: required with NEUROON_TOKEN_MODE=remote")
        if self.rotate_after >= TOKEN_LIFETIME:
            found.append(
                f"NEUROON_ROTATE_AFTER: {self.rotate_after:g} s is not less than the"
                f" {TOKEN_LIFETIME} s a shop token is valid; expired tokens would be served"
            )
        return found
