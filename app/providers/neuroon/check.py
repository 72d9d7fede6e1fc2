"""Neuroon's steps in `widget-proxy check`: a shop token (issued there, or signed here)
and the loader script."""

from __future__ import annotations

from ...ops.checklist import Steps, utc
from ...security.identity import Identity
from .settings import NeuroonSettings
from .tokens import neuroon_tokens


async def check(settings: NeuroonSettings, steps: Steps, email: str | None) -> None:
    remote = settings.token_mode == "remote"  # noqa: S105
    tokens = neuroon_tokens(settings, steps.http)
    identity = Identity(email or "")  # one token for the whole shop: nobody in it
    fingerprint = steps.out.fingerprint
    if remote:
        await steps.connect(settings.api_url)
        entry, ms = await steps.timed(
            "token issue", tokens.issue(identity), rejected="check NEUROON_API_KEY"
        )
        text = f"{steps.status.text} in {ms} ms, token {fingerprint(entry.token)}"
        steps.out.ok("token issue", text)
    else:
        entry, _ = await steps.timed("token", tokens.issue(identity))
        steps.out.ok(
            "token",
            f"signed locally for shop {settings.shop_id} at {utc(entry.issued_at)},"
            f" re-issued after {settings.rotate_after:g} s, token {fingerprint(entry.token)}",
        )
    await steps.script(settings.script_url)
