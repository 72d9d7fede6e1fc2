"""The caches' spans: the token (lookup, fetch, issue), the page (lookup, fetch,
download) and the injection. Built by `create_app` only when tracing is on
(`ops.tracing`); what a span may hold: `ops.spans`.

Each span says how it went in `widget_proxy.cache.result`: `hit` (this process held
it, or the shared store did), `miss` (this request had it made: an issue, a
download), `coalesced` (it waited for another request's, in this process or another),
`stale` (a page past its freshness, served while it is revalidated). The outcome is
read where the cache decides it, by the subclasses' overrides, into the current span
(a single flight's task runs in the context of the request that started it).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from opentelemetry import trace
from opentelemetry.trace import Tracer

from ..delivery.inject import SplitPage
from ..delivery.page import Color, Page, PageSource
from ..ops.spans import step
from ..responses import Prepared
from .pages import Fetch, PageCache, PageEntry, PageFetch
from .store import Store
from .tokens import TokenCache, TokenEntry, TokenIssuer
from .views import View, Views

I = TypeVar("I")  # noqa: E741 - whose token (the visitor's identity)
RESULT: Final = "widget_proxy.cache.result"
TIER: Final = "widget_proxy.cache.tier"  # memory (this process) or store (shared)


@dataclass(slots=True)
class _Outcome:
    found: bool | None = None  # what the first read of the store found
    made: bool = False  # whether this request's flight made it


_outcome: ContextVar[_Outcome | None] = ContextVar("widget_proxy_trace_outcome", default=None)


def _result(outcome: _Outcome) -> str:
    if outcome.made:
        return "miss"
    return "hit" if outcome.found else "coalesced"


class TracedTokenCache(TokenCache[I]):
    def __init__(self, *args: Any, tracer: Tracer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tracer = tracer

    def cached(self, key: str) -> str | None:
        with step(self._tracer, "token lookup", **{TIER: "memory"}) as span:
            token = super().cached(key)
            span.set_attribute(RESULT, "miss" if token is None else "hit")
            return token

    async def entry(self, key: str, identity: I) -> TokenEntry:
        outcome = _Outcome()
        reset = _outcome.set(outcome)
        try:
            with step(self._tracer, "token fetch", **{TIER: "store"}) as span:
                try:
                    return await super().entry(key, identity)
                finally:
                    span.set_attribute(RESULT, _result(outcome))
        finally:
            _outcome.reset(reset)

    async def _read(self, key: str) -> TokenEntry | None:
        entry = await super()._read(key)
        outcome = _outcome.get()
        if outcome is not None and outcome.found is None:
            outcome.found = entry is not None
        return entry

    async def _produce(self, key: str, identity: I) -> TokenEntry:
        outcome = _outcome.get()
        if outcome is not None:
            outcome.made = True
        return await super()._produce(key, identity)


class TracedIssuer(Generic[I]):
    """The vendor's token issue (a signin at the vendor, or a token signed here) as a
    span; a signin's call is its child (`upstream/traced`), with its attempts and the
    breaker's state."""

    def __init__(self, issuer: TokenIssuer[I], *, tracer: Tracer, vendor: str) -> None:
        self._issuer = issuer
        self._tracer = tracer
        self._vendor = vendor

    def cache_key(self, identity: I) -> str:
        return self._issuer.cache_key(identity)

    async def issue(self, identity: I) -> TokenEntry:
        with step(self._tracer, "token issue", **{"widget_proxy.vendor": self._vendor}):
            return await self._issuer.issue(identity)


class TracedPageCache(PageCache):
    """The page cache, telling the current span (`TracedPages`') how the page came."""

    def __init__(self, store: Store, fetch: Fetch, *, tracer: Tracer, **kwargs: Any) -> None:
        super().__init__(store, _traced_fetch(fetch, tracer), **kwargs)

    def _serve(
        self, key: str, path: str, color: Color, entry: PageEntry | None
    ) -> SplitPage | None:
        stale = entry is not None and self._clock() >= entry.fresh_until
        page = super()._serve(key, path, color, entry)
        if page is not None:
            trace.get_current_span().set_attribute(RESULT, "stale" if stale else "hit")
        return page

    async def _download(
        self, key: str, path: str, color: Color, known: PageEntry | None
    ) -> PageEntry:
        if known is None:  # a miss (with `known`: a stale page's revalidation)
            trace.get_current_span().set_attribute(RESULT, "miss")
        return await super()._download(key, path, color, known)


def _traced_fetch(fetch: Fetch, tracer: Tracer) -> Fetch:
    """The page's download as a span: `revalidated` when the vendor said 304."""

    async def download(
        path: str, color: Color, etag: str | None, last_modified: str | None
    ) -> PageFetch:
        conditional = etag is not None or last_modified is not None
        with step(
            tracer, "page download", **{"widget_proxy.page.conditional": conditional}
        ) as span:
            fetched = await fetch(path, color, etag, last_modified)
            span.set_attribute("widget_proxy.page.revalidated", fetched.page is None)
            return fetched

    return download


class TracedPages:
    """The vendor's page source, its lookups and fetches as spans."""

    def __init__(self, pages: PageSource, *, tracer: Tracer) -> None:
        self._pages = pages
        self._tracer = tracer

    @property
    def paths(self) -> tuple[str, ...]:
        return self._pages.paths

    def select(self, params: Any) -> str:
        return self._pages.select(params)

    def cached(self, page: str, color: Color) -> Page | None:
        with step(self._tracer, "page lookup", **{TIER: "memory", RESULT: "hit"}) as span:
            found = self._pages.cached(page, color)
            if found is None:
                span.set_attribute(RESULT, "miss")
            return found

    async def fetch(self, page: str, color: Color) -> Page:
        with step(self._tracer, "page fetch", **{TIER: "store", RESULT: "coalesced"}):
            return await self._pages.fetch(page, color)


class TracedViews(Views):
    """The injection as a span: `rendered` says whether the page was rendered with the
    token now, or the answer made earlier was served."""

    def __init__(self, headers: Sequence[tuple[bytes, bytes]], *, tracer: Tracer) -> None:
        super().__init__(headers)
        self._tracer = tracer

    def answer(self, key: str, token: str, page: Page) -> Prepared:
        with step(self._tracer, "inject", **{"widget_proxy.inject.rendered": False}):
            return super().answer(key, token, page)

    def view(self, key: str, token: str, page: Page) -> View:
        trace.get_current_span().set_attribute("widget_proxy.inject.rendered", True)
        return super().view(key, token, page)
