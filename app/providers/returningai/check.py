"""Returning.AI's steps in `widget-proxy check`: a real signin, then every widget page."""

from __future__ import annotations

from ...errors import StepFailed
from ..checking import Steps
from .api import returningai_api
from .settings import ReturningAISettings


async def check(settings: ReturningAISettings, steps: Steps, email: str | None) -> None:
    if email is None:  # `check` asks for it first (check_email)
        raise StepFailed("email", "missing")
    await steps.connect(settings.base_url)
    api = returningai_api(settings, steps.http)
    token = await steps.each_key(
        "signin",
        [("WIDGET_API_KEY", settings.api_key), ("WIDGET_API_KEY_NEXT", settings.api_key_next)],
        lambda key: api.signin_with(key, email),
        lambda token, ms: f"{steps.status.text} in {ms} ms, token {steps.out.fingerprint(token)}",
        rejected="check WIDGET_API_KEY and WIDGET_COMMUNITY_ID",
    )
    steps.token_exp(token)

    for widget in dict.fromkeys((settings.default_widget, *settings.widgets)):
        step = f"page {widget.type}/{widget.id}"
        # A missing or repeated placeholder raises here, with the reason as its detail.
        fetch, ms = await steps.timed(step, api.page(widget.path, steps.color))
        if fetch.page is None:
            raise StepFailed(step, "the page answered 304 Not Modified to a plain request")
        size = len(fetch.page.head) + len(fetch.page.tail)
        steps.out.ok(step, f"{steps.status.text} in {ms} ms, one token placeholder, {size} bytes")
