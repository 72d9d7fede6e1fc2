"""The no-configuration demo: a stand-in vendor, a stand-in merchant site, the proxy.

The vendor is played by its provider's own stand-in (`providers/*/standin.py`).

`widget-proxy demo` reads the same settings as `serve` (the environment over `.env`) on
top of its own defaults, so token lifetimes, margins, limits, the cache or the log
level can be tried in it (`HISSUNO_TOKEN_TTL=90 TOKEN_REFRESH_MARGIN=30 widget-proxy
demo --provider hissuno`). Two things stay the demo's whatever they say (`demo_env`):
the stand-in's settings (`TOKEN_PROVIDER`, the vendor's keys and other secrets, its
`*_URL`s and `*_INTEGRITY` hashes, ids), since the demo's login lets anyone in as any
email and must never reach a real vendor with a real key; and how its login writes the
session (`LOGIN`). A `SESSION_SECRET` is made up when none is set.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Final

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount

from ..application import create_app
from ..ops.requestlog import RequestLog
from ..options import options_of
from ..providers import PROVIDERS, StandIn
from ..security.forwarded import TrustedProxies
from ..settings import Settings
from .site import site_routes

__all__ = ["LOGIN", "StandIn", "demo_app", "demo_env", "demo_settings", "stand_in"]

# How the demo's login (`site.py`) writes the session, so how the proxy must read it.
# (The cookie's flags are the login's own, in `site.py`: not the proxy's settings.)
LOGIN: Final = {
    "IDENTITY_SOURCE": "session",
    "SESSION_EMAIL_KEY": "email",
    "SESSION_USER_ID_KEY": "",
    "SESSION_METADATA_KEYS": "email",
    "LOGIN_URL": "/login",
}


def stand_in(provider: str) -> StandIn:
    """A fresh stand-in for `provider`, with random credentials."""
    return PROVIDERS[provider].stand_in()


def demo_settings(vendor: StandIn, upstream_url: str, **overrides: str) -> Settings:
    """The demo's settings with nothing from the environment (`overrides` win)."""
    env = {**vendor.proxy_env(upstream_url), "SESSION_SECRET": secrets.token_urlsafe(32), **LOGIN}
    return Settings.from_env({**env, **overrides})


def demo_env(
    provider: str, vendor: StandIn, upstream_url: str, user: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """The demo's settings from the user's (`user`: the environment over `.env`), and the
    names of the user's settings it replaced.

    From the bottom: a new `SESSION_SECRET` if the user set none; the user's settings;
    the stand-in's settings and `LOGIN`. Of the vendor's group, the user's secrets (a
    rotation's next key, a `*_FILE` form too), URLs and script hashes are dropped even
    where the stand-in sets none: they would point at the real vendor, or not match it.
    """
    fixed = {**vendor.proxy_env(upstream_url), **LOGIN}
    group = options_of(PROVIDERS[provider].settings, provider)
    theirs = {o.name for o in group if o.secret or o.name.endswith(("_URL", "_INTEGRITY"))}
    names = theirs | set(fixed)
    dropped = names | {f"{name}_FILE" for name in names}
    replaced = sorted(n for n in dropped if user.get(n, "").strip() and user[n] != fixed.get(n))
    kept = {name: value for name, value in user.items() if name not in dropped}
    if not (kept.get("SESSION_SECRET", "").strip() or kept.get("SESSION_SECRET_FILE", "").strip()):
        kept["SESSION_SECRET"] = secrets.token_urlsafe(32)
    return {**kept, **fixed}, replaced


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
