"""Hissuno's settings: the project, its secret, how long user JWTs live, and where the
widget's bundle and chat API are."""

from __future__ import annotations

from ...options import option, settings_group, text
from ...options import parsers as p
from ...secret import Secret
from .tokens import DEFAULT_TTL


@settings_group
class HissunoSettings:
    secret_key: Secret = option(
        "HISSUNO_SECRET_KEY",
        None,
        "Hissuno project secret: sk_live_ and 32 characters of A-Z a-z 0-9 _ -",
        p.secret_matching(r"sk_live_[A-Za-z0-9_-]{32}", "sk_live_ and 32 of [A-Za-z0-9_-]"),
    )
    project_id: str = option(
        "HISSUNO_PROJECT_ID", None, "Hissuno project id the widget mounts", p.segment
    )
    script_url: str = option(
        "HISSUNO_SCRIPT_URL",
        None,
        "URL of the bundle that mounts Hissuno's React widget (see docs/vendors/hissuno.md)",
        p.url,
    )
    api_url: str = option(
        "HISSUNO_API_URL",
        "",
        "The widget's apiUrl: your Hissuno's chat endpoint, e.g."
        " https://hissuno.example.com/api/integrations/widget/chat (empty: the widget's"
        " default, /api/integrations/widget/chat on the page's origin)",
        p.optional(p.url),
    )
    token_ttl: int = option(
        "HISSUNO_TOKEN_TTL",
        text(DEFAULT_TTL),
        "Lifetime of the user JWTs the proxy signs for Hissuno, in seconds",
        p.positive(int),
    )

    @property
    def key(self) -> tuple[str, Secret]:
        return "HISSUNO_SECRET_KEY", self.secret_key

    def session_needs(self) -> tuple[str, ...]:
        return ()

    def problems(self) -> list[str]:
        return []
