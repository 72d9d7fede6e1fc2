"""Hissuno's steps in `widget-proxy check`: sign a user JWT, then the bundle that mounts
the widget, then Hissuno itself judges the token where the widget will chat.

The proof is `POST {HISSUNO_API_URL}/close` for a chat that never started: Hissuno
verifies the token there as it does for a chat (401 `Invalid token` under another key,
`Invalid project ID` for another project), then closes nothing and records nothing.
Posting a chat would prove the same but start a support conversation in the project.
"""

from __future__ import annotations

import json
import secrets

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
    await _api(settings, steps, entry.token)


async def _api(settings: HissunoSettings, steps: Steps, token: str) -> None:
    """Where the widget will post its chats, asked to judge the token."""
    url = settings.api_url
    if not url:
        steps.out.warn(
            "api",
            "HISSUNO_API_URL is empty, so the widget posts to /api/integrations/widget/chat"
            " on the widget page's own origin (route that path to Hissuno, or set it);"
            " HISSUNO_SECRET_KEY is unverified: there is no Hissuno to ask",
        )
        return
    body = {
        "projectId": settings.project_id,
        "sessionId": f"widget-proxy-check-{secrets.token_hex(8)}",  # a chat never started
        "widgetToken": token,
    }
    headers = {"content-type": "application/json", "accept": "application/json"}
    if steps.origin is not None:
        headers["origin"] = steps.origin
    await steps.proven(
        "api",
        url,
        lambda: steps.http.call(
            "api", "POST", f"{url}/close", headers=headers, content=json.dumps(body).encode()
        ),
        key="HISSUNO_SECRET_KEY",
        accepted=f"Hissuno accepted the token for project {settings.project_id} at {url}",
        refused="Hissuno refused the token signed with HISSUNO_SECRET_KEY",
        hint="check HISSUNO_SECRET_KEY and HISSUNO_PROJECT_ID",
    )
