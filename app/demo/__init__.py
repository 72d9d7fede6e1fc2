"""The no-configuration demo: a stand-in vendor, a stand-in merchant site, the proxy.

The vendor is played by its provider's own stand-in (`providers/*/standin.py`).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount

from ..application import create_app
from ..ops.requestlog import RequestLog
from ..providers import PROVIDERS, StandIn
from ..security.forwarded import TrustedProxies
from ..settings import Settings
from .site import site_routes

__all__ = ["StandIn", "demo_app", "demo_settings", "stand_in"]


def stand_in(provider: str) -> StandIn:
    """A fresh stand-in for `provider`, with random credentials."""
    return PROVIDERS[provider].stand_in()


def demo_settings(vendor: StandIn, upstream_url: str, **overrides: str) -> Settings:
    env = {
        **vendor.proxy_env(upstream_url),
        "SESSION_SECRET": secrets.token_urlsafe(32),
        "SESSION_METADATA_KEYS": "email",
        "LOGIN_URL": "/login",
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
