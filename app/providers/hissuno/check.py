"""Hissuno's steps in `widget-proxy check`: sign a user JWT and verify it as Hissuno
will, then the bundle that mounts the widget, then where the widget will chat."""

from __future__ import annotations

import jwt

from ...cache.keys import Keys
from ...errors import StepFailed
from ...security.identity import Identity
from ..checking import Steps
from .settings import HissunoSettings
from .tokens import HissunoTokens


async def check(settings: HissunoSettings, steps: Steps, email: str | None) -> None:
    if email is None:  # `check` asks for it first (check_email)
        raise StepFailed("email", "missing")
    secret = settings.secret_key
    # Nothing is cached here, so the cache keys' secret doesn't matter.
    keys = Keys(secret.reveal())
    tokens = HissunoTokens(secret=secret, keys=keys, ttl=settings.token_ttl, margin=steps.margin)
    entry, _ = await steps.timed("token", tokens.issue(Identity(email)))
    try:
        # What Hissuno will do with it; a failure here means the secret can't sign.
        claims = jwt.decode(entry.token, secret.reveal(), algorithms=["HS256"])
    except jwt.InvalidTokenError as exc:
        raise StepFailed(
            "token", f"the signed token does not verify ({type(exc).__name__})"
        ) from None
    lifetime = int(claims["exp"]) - int(claims["iat"])
    text = (
        f"HS256, signed and verified locally, claims {', '.join(claims)},"
        f" lives {lifetime} s, token {steps.out.fingerprint(entry.token)}"
    )
    if lifetime <= steps.margin:
        steps.out.warn(
            "token",
            f"{text}: not longer than TOKEN_REFRESH_MARGIN"
            f" ({steps.margin:g} s), so it is never cached",
        )
    else:
        steps.out.ok("token", text)
    await steps.script(settings.script_url)
    await _api(settings.api_url, steps)


async def _api(url: str, steps: Steps) -> None:
    """Where the widget will post its chats: only reachability, since Hissuno judges
    the page's origin, which a check from this server can't have."""
    if not url:
        steps.out.warn(
            "api",
            "HISSUNO_API_URL is empty, so the widget posts to /api/integrations/widget/chat"
            " on the widget page's own origin: route that path to Hissuno, or set it",
        )
        return
    await steps.connect(url)
    steps.out.ok("api", f"the widget chats with {url} (HISSUNO_API_URL)")
