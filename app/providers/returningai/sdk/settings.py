"""Settings of Returning.AI's Access Key Embed (`TOKEN_PROVIDER=returningai-sdk`): the
access pair, the v2 API, the Widget SDK's script and bundle, and the widget tag."""

from __future__ import annotations

import re
from typing import Final

from ....options import option, settings_group
from ....options import parsers as p
from ....secret import Secret

# The widget types of the SDK, each with its own element (`<rai-{element}-widget>`).
ELEMENTS: Final = {
    "store": "rai-store-widget",
    "channel": "rai-channel-widget",
    "milestone": "rai-milestone-widget",
    "social": "rai-social-widget",
    "currency-view": "rai-currency-widget",
    "referral-conditions": "rai-referral-widget",
    "custom": "rai-custom-widget",
}
IDENTITY_SOURCES: Final = ("email", "user_id")  # beside any SESSION_METADATA_KEYS name
_FIELD = re.compile(r"data-[a-z0-9]+(-[a-z0-9]+)*")
_LENGTH = r"\d+(\.\d+)?(px|%|em|rem|vh|vw)|auto"


def identifiers(raw: str) -> tuple[tuple[str, str], ...]:
    """`data-field=source` pairs: which of the visitor's values the token request names."""
    pairs: dict[str, str] = {}
    for item in (i.strip() for i in raw.split(",")):
        if not item:
            continue
        field, sep, source = (part.strip() for part in item.partition("="))
        if not sep or not source:
            raise ValueError(f"{item!r} is not a data-field=source pair")
        if not _FIELD.fullmatch(field):
            raise ValueError(f"{field!r} is not a data-* identifier field (e.g. data-email)")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", source):
            raise ValueError(f"{source!r} is not email, user_id or a session metadata name")
        if field in pairs:
            raise ValueError(f"{field} is named twice")
        pairs[field] = source
    if not pairs:
        raise ValueError("must name at least one identifier, e.g. data-email=email")
    return tuple(pairs.items())


@settings_group
class ReturningAISdkSettings:
    access_id: str = option(
        "RETURNINGAI_ACCESS_ID", None, "Access Key Embed accessId (SDK Access in the admin)",
        p.text,
    )  # fmt: skip
    access_key: Secret = option(
        "RETURNINGAI_ACCESS_KEY", None, "Access Key Embed accessKey; never sent to a browser",
        p.secret,
    )  # fmt: skip
    access_key_next: Secret | None = option(
        "RETURNINGAI_ACCESS_KEY_NEXT",
        "",
        "During a key rotation, the new accessKey: tried once when RETURNINGAI_ACCESS_KEY is"
        " refused",
        p.optional(p.secret, empty=None),
    )
    api_url: str = option(
        "RETURNINGAI_API_URL",
        "https://api-v2.returning.ai",
        "Returning.AI v2 API: where embed tokens are issued, and the tag's v2-api-url",
        p.url,
    )
    user_identifiers: tuple[tuple[str, str], ...] = option(
        "RETURNINGAI_USER_IDENTIFIERS",
        "data-email=email",
        "The token's userIdentifiers: data-field=source pairs, source email, user_id or a"
        " SESSION_METADATA_KEYS name",
        identifiers,
    )
    sdk_url: str = option(
        "RETURNINGAI_SDK_URL",
        "https://unpkg.com/@returningai/widget-sdk@1.5.1/dist/rai-widget.iife.js",
        "URL of the Widget SDK script (pinned: a new version is a deliberate change)",
        p.url,
    )
    sdk_integrity: str = option(
        "RETURNINGAI_SDK_INTEGRITY",
        "",
        "Subresource Integrity of the SDK script (sha384-…); sets integrity and"
        " crossorigin=anonymous",
        p.optional(p.integrity),
    )
    bundle_url: str = option(
        "RETURNINGAI_BUNDLE_URL",
        "",
        "The widget's bundle-url (bundle mode, recommended); empty: the SDK's iframe mode",
        p.optional(p.url),
    )
    widget_type: str = option(
        "RETURNINGAI_WIDGET_TYPE",
        "store",
        f"Widget type, which picks the tag: {', '.join(ELEMENTS)}",
        p.choice(*ELEMENTS),
    )
    community_id: str = option(
        "RETURNINGAI_COMMUNITY_ID", "", "The tag's community-id (required but for custom widgets)",
        p.optional(p.segment),
    )  # fmt: skip
    widget_id: str = option(
        "RETURNINGAI_WIDGET_ID", "", "The tag's widget-id (custom widgets: their base64 id)",
        p.optional(p.pattern(r"[A-Za-z0-9+/=_-]{1,256}", "a widget id (base64 characters)")),
    )  # fmt: skip
    channel_id: str = option(
        "RETURNINGAI_CHANNEL_ID", "", "The tag's channel-id (required for channel widgets)",
        p.optional(p.segment),
    )  # fmt: skip
    width: str = option(
        "RETURNINGAI_WIDGET_WIDTH", "100%", "The tag's width",
        p.pattern(_LENGTH, "a CSS length such as 100% or 480px"),
    )  # fmt: skip
    height: str = option(
        "RETURNINGAI_WIDGET_HEIGHT", "600px", "The tag's height",
        p.pattern(_LENGTH, "a CSS length such as 600px"),
    )  # fmt: skip

    @property
    def element(self) -> str:
        return ELEMENTS[self.widget_type]

    @property
    def key(self) -> tuple[str, Secret]:
        return "RETURNINGAI_ACCESS_KEY", self.access_key

    def session_needs(self) -> tuple[str, ...]:
        return tuple(s for _, s in self.user_identifiers if s not in IDENTITY_SOURCES)

    def problems(self) -> list[str]:
        found = []
        if self.widget_type != "custom" and not self.community_id:
            found.append(
                f"RETURNINGAI_COMMUNITY_ID: required for a {self.widget_type} widget"
                " (the tag's community-id)"
            )
        if self.widget_type == "custom" and not self.widget_id:
            found.append("RETURNINGAI_WIDGET_ID: required for a custom widget (its base64 id)")
        if self.widget_type == "channel" and not self.channel_id:
            found.append("RETURNINGAI_CHANNEL_ID: required for a channel widget")
        return found
