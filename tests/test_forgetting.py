"""`forget(app, email)` from a merchant's logout handler, on what `create_app` returns
(mounted in the merchant's app): the user's token, answer and session memo entry
dropped, their next view signs in again, nobody else is touched."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

import widget_proxy
from tests.support import LeakScanner, Proxy, token_in
from widget_proxy.providers.returningai import ReturningAIStandIn
from widget_proxy.servers import BackgroundServer
from widget_proxy.settings import Settings

GONE, KEPT = "gone@example.com", "kept@example.com"


def merchant(settings: Settings) -> Starlette:
    """A merchant's app: the proxy mounted, and a logout that forgets the user."""
    proxy = widget_proxy.create_app(settings)

    async def logout(request: Request) -> JSONResponse:
        body = await request.json()
        if body.get("all"):
            return JSONResponse({"forgotten": await widget_proxy.forget(proxy, everybody=True)})
        return JSONResponse({"forgotten": await widget_proxy.forget(proxy, body["email"])})

    return Starlette(
        routes=[Route("/logout", logout, methods=["POST"]), Mount("/", proxy)],
        lifespan=lambda app: proxy.router.lifespan_context(proxy),
    )


@pytest.mark.parametrize(("everybody", "forgotten"), [(False, 1), (True, -1)])
def test_forget_drops_the_users_token_and_only_theirs(
    everybody: bool, forgotten: int, make_settings: Callable[..., Settings],
    vendor: ReturningAIStandIn, leak_scanner: LeakScanner,
) -> None:  # fmt: skip
    settings = make_settings()
    with BackgroundServer(merchant(settings), timeout_graceful_shutdown=1) as server:
        proxy = Proxy(settings, server.url, leak_scanner)
        server_client = proxy.client
        cookies = {e: proxy.cookie({"email": e}) for e in (GONE, KEPT)}  # one per browser

        def token(email: str) -> str:
            return token_in(proxy.get("/widget", headers=cookies[email]).text)

        old, kept = token(GONE), token(KEPT)
        assert token(GONE) == old
        body = {"all": True} if everybody else {"email": GONE}
        answer = proxy.client.post("/logout", json=body)
        assert answer.json() == {"forgotten": forgotten}

        new = token(GONE)
        assert new != old
        assert token(GONE) == new  # signed in once, then warm again
        assert (token(KEPT) != kept) is everybody
        assert vendor.calls["signin"] == (4 if everybody else 3)
        server_client.close()
