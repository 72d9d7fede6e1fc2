"""Access Key Embed's steps in `widget-proxy check`: a real embed token for a test user
(under each key of a rotation), its lifetime, then the SDK script and the bundle."""

from __future__ import annotations

from ....cache.keys import Keys
from ....errors import StepFailed
from ....security.identity import Identity
from ....upstream.client import HttpClient
from ...checking import Steps
from .settings import ReturningAISdkSettings
from .tokens import access_key_tokens


async def check(settings: ReturningAISdkSettings, steps: Steps, email: str | None) -> None:
    if email is None:  # `check` asks for it first (check_email)
        raise StepFailed("email", "missing")
    http: HttpClient = steps.http
    # Nothing is cached here, so the cache keys' secret doesn't matter.
    tokens = access_key_tokens(settings, http, hashes=Keys(settings.access_key.reveal()))
    identity = Identity(email, metadata=tuple((n, f"check-{n}") for n in settings.session_needs()))
    identifiers = tokens.user_identifiers(identity)
    await steps.connect(settings.api_url)
    token, _ = await steps.each_key(
        "token issue",
        [
            ("RETURNINGAI_ACCESS_KEY", settings.access_key),
            ("RETURNINGAI_ACCESS_KEY_NEXT", settings.access_key_next),
        ],
        lambda key: tokens.fetch(key, identifiers),
        lambda answer, ms: (
            f"{steps.status.text} in {ms} ms for {', '.join(identifiers)}, {_lives(answer[1])},"
            f" token {steps.out.fingerprint(answer[0])}"
        ),
        rejected="check RETURNINGAI_ACCESS_ID and RETURNINGAI_ACCESS_KEY",
    )
    steps.token_exp(token)
    # Two scripts: each line says which (RETURNINGAI_SDK_URL, RETURNINGAI_BUNDLE_URL).
    await steps.script(settings.sdk_url, "script (SDK loader)")
    if settings.bundle_url:
        await steps.script(settings.bundle_url, "script (widget bundle)")


def _lives(expires_in: float | None) -> str:
    return "no expiresIn" if expires_in is None else f"expiresIn {expires_in:g} s"
