"""The no-configuration demo: a stand-in vendor, a stand-in merchant site, the proxy."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Mount

from app.application import create_app
from app.demo.site import site_routes
from app.demo.upstream import DemoUpstream
from app.settings import Settings

__all__ = ["DemoUpstream", "demo_app", "demo_settings", "demo_upstream"]


def demo_upstream() -> DemoUpstream:
    return DemoUpstream(
        api_key="demo-" + secrets.token_urlsafe(24),
        community_id="demo-community",
        signing_key=secrets.token_urlsafe(32),
    )


def demo_settings(upstream: DemoUpstream, upstream_url: str, **overrides: str) -> Settings:
    env = {
        "WIDGET_BASE_URL": upstream_url,
        "WIDGET_API_KEY": upstream.api_key,
        "WIDGET_COMMUNITY_ID": upstream.community_id,
        "WIDGET_ID": "demo-store",
        "WIDGETS": "channel/demo-channel,milestone/demo-milestones",
        "SESSION_SECRET": secrets.token_urlsafe(32),
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
    )
