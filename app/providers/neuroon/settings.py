"""Neuroon's settings: the shop, its key, and how shop tokens are made."""

from __future__ import annotations

from typing import Final, Literal

from ...options import option, settings_group, text
from ...options import parsers as p
from ...secret import Secret

# Neuroon accepts a shop token for 24 h after its timestamp, and it can't be renewed.
TOKEN_LIFETIME: Final = 24 * 3600
# An hour before that. Declared beside its setting: the token issuer, which reads this
# group, takes it as its own default too.
DEFAULT_ROTATE_AFTER: Final = TOKEN_LIFETIME - 3600


# Subresource Integrity: one or more `sha256-`/`sha384-`/`sha512-` base64 digests.
_SRI = (
    r"(sha256|sha384|sha512)-[A-Za-z0-9+/]+={0,2}( +(sha256|sha384|sha512)-[A-Za-z0-9+/]+={0,2})*"
)


# Neuroon's key format, checked before a key is used.
_KEY = p.secret_matching(r"sk_[0-9a-f]{32}", "sk_ followed by 32 lowercase hex digits")


@settings_group
class NeuroonSettings:
    shop_id: str = option("NEUROON_SHOP_ID", None, "Neuroon shop id", p.segment)
    api_key: Secret = option(
        "NEUROON_API_KEY",
        None,
        "Neuroon shop API key: sk_ and 32 lowercase hex characters",
        _KEY,
    )
    api_key_next: Secret | None = option(
        "NEUROON_API_KEY_NEXT",
        "",
        "During a key rotation (remote mode), the new key: tried once when Neuroon refuses"
        " NEUROON_API_KEY",
        p.optional(_KEY, empty=None),
    )
    token_mode: Literal["local", "remote"] = option(
        "NEUROON_TOKEN_MODE",
        "remote",
        "remote: Neuroon issues the shop token (opaque); local: the proxy signs it with"
        " the key (HMAC)",
        p.choice("local", "remote"),
    )
    api_url: str = option(
        "NEUROON_API_URL",
        "https://api.neuroon.ai",
        "Neuroon API origin: where remote mode asks for tokens, and the widget's data-api-url",
        p.url,
    )
    rotate_after: float = option(
        "NEUROON_ROTATE_AFTER",
        text(DEFAULT_ROTATE_AFTER),
        "Seconds after which a shop token (valid 24 h) is re-issued",
        p.positive(float),
    )
    script_url: str = option(
        "NEUROON_SCRIPT_URL",
        "https://cdn.neuroon.ai/widget.js",
        "URL of Neuroon's widget loader script (pin a version, e.g. …/widget@0.9.10/widget.js,"
        " to use NEUROON_SCRIPT_INTEGRITY)",
        p.url,
    )
    script_integrity: str = option(
        "NEUROON_SCRIPT_INTEGRITY",
        "",
        "Subresource Integrity of the loader script (sha384-…); sets integrity and"
        " crossorigin=anonymous",
        p.optional(p.integrity),
    )
    theme: Literal["auto", "light", "dark"] = option(
        "NEUROON_THEME", "auto", "The widget's data-theme: auto, light or dark",
        p.choice("auto", "light", "dark"),
    )  # fmt: skip
    locale: str = option(
        "NEUROON_LOCALE",
        "",
        "The widget's data-locale, an ISO 639-1 code such as en or es (empty: it detects)",
        p.optional(p.pattern(r"[a-z]{2}", "a two-letter ISO 639-1 code such as en")),
    )
    position: Literal["inline", "floating"] = option(
        "NEUROON_POSITION", "inline", "The widget's data-position: inline or floating",
        p.choice("inline", "floating"),
    )  # fmt: skip

    @property
    def key(self) -> tuple[str, Secret]:
        return "NEUROON_API_KEY", self.api_key

    def session_needs(self) -> tuple[str, ...]:
        return ()

    def problems(self) -> list[str]:
        found = []
        if self.token_mode == "local" and self.api_key_next is not None:  # noqa: S105
            found.append(
                "NEUROON_API_KEY_NEXT: only used with NEUROON_TOKEN_MODE=remote; a token signed"
                " here is checked against one key, so switch NEUROON_API_KEY itself"
            )
        if self.rotate_after >= TOKEN_LIFETIME:
            found.append(
                f"NEUROON_ROTATE_AFTER: {self.rotate_after:g} s is not less than the"
                f" {TOKEN_LIFETIME} s a shop token is valid; expired tokens would be served"
            )
        return found
