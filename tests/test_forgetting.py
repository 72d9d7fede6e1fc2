"""`forget(app, email)` from a merchant's logout handler, on what `create_app` returns
(mounted in the merchant's app): the user's token, answer and session memo entry
dropped, their next view signs in again, nobody else is touched."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

import widget_proxy
from tests.support import LeakScanner, Proxy, token_in, wait_until
from widget_proxy.cache import Keys, open_store
from widget_proxy.forgetting import revocations
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


def test_another_app_on_the_same_redis_learns_it(
    make_settings: Callable[..., Settings], vendor: ReturningAIStandIn,
    leak_scanner: LeakScanner, shared_redis: str,
) -> None:  # fmt: skip
    settings = make_settings(CACHE_URL=shared_redis)
    other = widget_proxy.create_app(settings)
    mounted = Starlette(
        routes=[Mount("/", other)],
        lifespan=lambda app: other.router.lifespan_context(other),
    )
    with (
        BackgroundServer(merchant(settings), timeout_graceful_shutdown=1) as one,
        BackgroundServer(mounted, timeout_graceful_shutdown=1) as two,
    ):
        first, second = (Proxy(settings, s.url, leak_scanner) for s in (one, two))
        cookie = first.cookie({"email": GONE})

        def tokens() -> set[str]:
            return {token_in(p.get("/widget", headers=cookie).text) for p in (first, second)}

        old = tokens()
        assert len(old) == 1
        assert first.client.post("/logout", json={"email": GONE}).json() == {"forgotten": 1}
        wait_until(lambda: not old & tokens(), timeout=1.0)
        assert len(tokens()) == 1
        assert vendor.calls["signin"] == 2  # once for both
        for proxy in (first, second):
            proxy.client.close()


@pytest.mark.parametrize(
    ("cache_url", "shared_dir", "log", "interval"),
    [
        ("memory://", None, None, 1.0),  # this process only
        ("memory://", "workers", "FileForgets", 0.25),  # serve's workers: a file, looked at often
        ("redis://127.0.0.1:6379/0", None, "RedisForgets", 1.0),
        # With Redis, pub/sub pushes; the workers' folder changes nothing (no 0.25 s reads).
        ("redis://127.0.0.1:6379/0", "workers", "RedisForgets", 1.0),
    ],
)
@pytest.mark.anyio
async def test_each_store_learns_forgets_its_own_way_at_its_own_pace(
    tmp_path: Path, cache_url: str, shared_dir: str | None, log: str | None, interval: float
) -> None:
    store = open_store(cache_url, secret="s" * 40)  # (Redis: nothing is sent here)
    where = None if shared_dir is None else str(tmp_path)
    made = revocations(
        store, Keys("s" * 40), interval=1.0, keep=60, shared_dir=where, clock=time.time
    )
    assert (None if made._log is None else type(made._log).__name__) == log
    assert made._interval == interval
    await store.aclose()
