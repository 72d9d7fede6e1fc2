"""What a vendor is to the rest of the proxy: one `Provider`, in a folder of its own.

A provider declares its settings group, builds its token issuer and its page source
from those settings and the shared parts `create_app` hands it, runs its steps in
`widget-proxy check`, and plays itself in the demo (a stand-in). Nothing outside
`providers/` (and the demo) names a vendor: they ask the provider.

    Provider                 one per vendor, registered in `providers/__init__.py`
    ├── settings             its group of settings (a frozen dataclass of options)
    ├── build(...)  → Vendor  its `TokenIssuer` and its `PageSource`
    ├── check(...)           its steps in `widget-proxy check`
    └── stand_in()           a local stand-in of the vendor, for the demo and tests
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from starlette.types import ASGIApp

from ..cache.keys import Keys
from ..cache.pages import Fetch, PageCache
from ..cache.tokens import JwtLifetime, TokenIssuer
from ..delivery.loader import TemplatePages, loader_pages
from ..delivery.page import PageSource
from ..ops.metrics import Metrics
from ..secret import Secret
from ..security.identity import Identity
from ..upstream.client import HttpClient
from .checking import Steps

# What a visitor who is not signed in gets (with ALLOW_ANONYMOUS): the same token as
# everyone ("shared": the token names no user), or the widget without one ("tokenless").
Anonymous = Literal["shared", "tokenless"] | None

S = TypeVar("S", bound="VendorSettings")


class VendorSettings(Protocol):
    """A vendor's group of settings: fields declared with `options.option`."""

    def problems(self) -> list[str]:
        """What no single setting of the group shows (e.g. one needed only in one mode)."""

    @property
    def key(self) -> tuple[str, Secret]:
        """The vendor's main secret and its variable, for `check` to fingerprint."""

    def session_needs(self) -> tuple[str, ...]:
        """The session values (SESSION_METADATA_KEYS names) its tokens are made from."""


@dataclass(frozen=True, slots=True)
class Vendor:
    """What a provider builds: how tokens are issued, where the page comes from."""

    tokens: TokenIssuer[Identity]
    pages: PageSource


@dataclass(frozen=True, slots=True)
class Parts:
    """The shared machinery `create_app` hands every provider, built from the core settings."""

    http: HttpClient
    keys: Keys  # per-purpose HMACs for cache keys that hold no personal data
    lifetime: JwtLifetime  # TOKEN_REFRESH_MARGIN, TOKEN_MAX_TTL, TOKEN_DEFAULT_TTL
    page_cache: Callable[[str, Fetch], PageCache]  # (the vendor's origin, how to fetch a page)
    metrics: Metrics = field(default_factory=Metrics)
    template: Path | None = None  # WIDGET_TEMPLATE, replacing a built-in loader page

    def loader_pages(self, name: str, context: Mapping[str, Any]) -> TemplatePages:
        """The loader page `templates/providers/{name}.html` (or WIDGET_TEMPLATE).

        Every loader page also gets `refresh_margin`: a page that renews its token asks
        `POST /widget/token` before the token's exp minus this margin.
        """
        context = {"refresh_margin": self.lifetime.margin, **context}
        return loader_pages(name, context, override=self.template)


class StandIn(Protocol):
    """A vendor played locally: its ASGI app and the settings that point the proxy at it."""

    def app(self) -> ASGIApp: ...

    def proxy_env(self, url: str) -> dict[str, str]:
        """The settings that point a proxy at this stand-in, served at `url`."""

    def token_problem(self, token: str) -> str | None:
        """Why the vendor would refuse `token` for its widget, or None if it accepts it."""


class Provider(Protocol[S]):
    @property
    def name(self) -> str:
        """Its TOKEN_PROVIDER value."""

    @property
    def settings(self) -> type[S]: ...

    @property
    def check_email(self) -> str | None:
        """Why `widget-proxy check` needs a test user's --email; None if it doesn't."""

    @property
    def anonymous(self) -> Anonymous:
        """What an anonymous visitor gets; None: this vendor has no anonymous mode."""

    def build(self, settings: S, parts: Parts) -> Vendor: ...

    def check(self, settings: S, steps: Steps, email: str | None) -> Awaitable[None]:
        """Do for real what a first page view would do, one checklist line per step."""

    def stand_in(self) -> StandIn:
        """A fresh stand-in with random credentials."""
