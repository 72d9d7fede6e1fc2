"""The no-configuration demo: a stand-in vendor, a stand-in merchant site, the proxy."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount

from app.access import RequestLog
from app.application import create_app
from app.demo.hissuno import HissunoStandIn
from app.demo.neuroon import NeuroonStandIn
from app.demo.site import site_routes
from app.demo.upstream import DemoUpstream
from app.proxies import TrustedProxies
from app.settings import Settings

__all__ = [
    "DemoUpstream",
    "HissunoStandIn",
    "NeuroonStandIn",
    "StandIn",
    "demo_app",
    "demo_settings",
    "demo_upstream",
    "stand_in",
]


class StandIn(Protocol):
    """A vendor played locally: its ASGI app and the settings that point the proxy at it."""

    def app(self) -> Starlette: ...

    def proxy_env(self, url: str) -> dict[str, str]: ...


def demo_upstream() -> DemoUpstream:
    return DemoUpstream(
        api_key="demo-" + secrets.token_urlsafe(24),
        community_id="demo-community",
        signing_key=secrets.token_urlsafe(32),
    )


def stand_in(provider: str) -> StandIn:
    """A fresh stand-in for `provider`, with random credentials."""
    if provider == "neuroon":
        return NeuroonStandIn(shop_id="demo-shop", api_key="sk_" + secrets.token_hex(16))
    if provider == "hissuno":
        secret = "sk_live_" + secrets.token_urlsafe(24)[:32]
        return HissunoStandIn(project_id="demo-project", secret_key=secret)
    return demo_upstream()


def demo_settings(vendor: StandIn, upstream_url: str, **overrides: str) -> Settings:
    env = {
        **vendor.proxy_env(upstream_url),
        "SESSION_SECRET": secrets.token_urlsafe(32),
        "SESSION_METADATA_KEYS": "email",
        "LOGIN_URL": "/login",
        "SESSION_HTTPS_ONLY": "false",  # the demo runs on plain http://127.0.0.1
    }
    return Settings.from_env({**env, **overrides})


def demo_app(settings: Settings, upstream_url: str) -> Starlette:
    """The merchant's site with the proxy mounted at its root, as one ASGI app."""
    proxy = create_app(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # A mounted app's lifespan is not run by Starlette; run the proxy's here.
        async with proxy.router.lifespan_context(proxy):
            yield

    return Starlette(
        routes=[*site_routes(settings, upstream_url), Mount("", app=proxy)],
        lifespan=lifespan,
        # The shop's pages get request lines too; the proxy's own logger steps aside.
        middleware=[
            Middleware(RequestLog, metrics=proxy.state.metrics, proxies=TrustedProxies(())),
        ],
    )
