"""Neuroon's steps in `widget-proxy check`: a shop token (issued there, or signed here
and then judged by the widget's own API, `GET {NEUROON_API_URL}/api/widget/search`, as
the widget sends it) and the loader script."""

from __future__ import annotations

from ...security.identity import ANONYMOUS
from ..checking import Steps, utc
from .settings import NeuroonSettings
from .tokens import neuroon_tokens


async def check(settings: NeuroonSettings, steps: Steps, email: str | None) -> None:
    remote = settings.token_mode == "remote"  # noqa: S105
    tokens = neuroon_tokens(settings, steps.http)
    identity = ANONYMOUS  # one token for the whole shop: nobody in it
    fingerprint = steps.out.fingerprint
    if remote:
        await steps.connect(settings.api_url)
        await steps.each_key(
            "token issue",
            [
                ("NEUROON_API_KEY", settings.api_key),
                ("NEUROON_API_KEY_NEXT", settings.api_key_next),
            ],
            tokens.fetch,
            lambda token, ms: f"{steps.status.text} in {ms} ms, opaque token {fingerprint(token)}",
            rejected="check NEUROON_API_KEY",
        )
    else:
        entry, _ = await steps.timed("token", tokens.issue(identity))
        steps.out.ok(
            "token",
            f"signed locally for shop {settings.shop_id} at {utc(entry.issued_at)},"
            f" re-issued after {settings.rotate_after:g} s, token {fingerprint(entry.token)}",
        )
        await _search(settings, steps, entry.token)
    await steps.script(settings.script_url)


async def _search(settings: NeuroonSettings, steps: Steps, token: str) -> None:
    """The widget's first call, with the token signed here: Neuroon accepts it or not."""
    headers = {"x-widget-token": token, "accept": "application/json"}
    if steps.origin is not None:
        headers["origin"] = steps.origin
    url = f"{settings.api_url}/api/widget/search"
    await steps.proven(
        "api",
        settings.api_url,
        lambda: steps.http.call("api", "GET", url, headers=headers, params={"q": "widget-proxy"}),
        key="NEUROON_API_KEY",
        accepted=f"Neuroon's widget API accepted the shop token of {settings.shop_id}",
        refused="Neuroon refused the shop token signed with NEUROON_API_KEY",
        hint="check NEUROON_API_KEY and NEUROON_SHOP_ID",
    )
