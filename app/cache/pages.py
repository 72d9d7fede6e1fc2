"""Vendor pages, fetched once per (path, colour) and kept split around the token.

Fresh for `PAGE_CACHE_TTL`; after that the cached page is still served while one
background refresh revalidates it (with `If-None-Match`/`If-Modified-Since` when
the upstream gave validators). While refreshes fail, the last good page is served
for up to `PAGE_STALE_IF_ERROR` more seconds; after that a request fetches in the
foreground and gets the error page if that fails too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Self

from ..delivery.inject import SplitPage
from ..delivery.page import Color
from ..errors import UpstreamError
from ..ops.metrics import Metrics
from .flight import DEFAULT_LEASE, Coalescer
from .store import Store

log = logging.getLogger("widget_proxy.cache")

# After a failed background refresh, wait this long (or the TTL, if shorter) before
# the next one, so a failing upstream is not hammered by every page view.
DEFAULT_PAGE_TTL: Final = 60.0  # seconds a page is served before it is revalidated
DEFAULT_STALE_IF_ERROR: Final = 600.0  # and past that, while the upstream fails
REFRESH_BACKOFF: Final = 5.0
# The pages' keys are remembered: the vendor's configured pages in each colour, a few
# (the paths are chosen by `PageSource.select`, never by a client; the bound is a guard).
MAX_KEYS: Final = 1024


@dataclass(frozen=True, slots=True)
class PageFetch:
    """What the upstream answered for a page: the page, or None for 304 Not Modified."""

    page: SplitPage | None
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class PageEntry:
    page: SplitPage
    etag: str | None
    last_modified: str | None
    fresh_until: float
    expires_at: float  # fresh_until + PAGE_STALE_IF_ERROR

    def to_bytes(self) -> bytes:
        meta = {
            "etag": self.etag,
            "last_modified": self.last_modified,
            "fresh_until": self.fresh_until,
            "expires_at": self.expires_at,
            "head": len(self.page.head),
        }
        return json.dumps(meta).encode() + b"\n" + self.page.head + self.page.tail

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        line, sep, body = data.partition(b"\n")
        if not sep:
            raise ValueError("not a page entry")
        meta = json.loads(line)
        head = int(meta["head"])
        return cls(
            SplitPage(body[:head], body[head:]),
            meta["etag"],
            meta["last_modified"],
            float(meta["fresh_until"]),
            float(meta["expires_at"]),
        )


# Fetch a page by its path at the vendor, conditionally when given validators.
Fetch = Callable[[str, Color, str | None, str | None], Awaitable[PageFetch]]


class PageCache:
    """Pages by their path at one vendor origin (`scope`: the origin, or anything naming it)."""

    def __init__(
        self,
        store: Store,
        fetch: Fetch,
        *,
        scope: str,
        ttl: float = DEFAULT_PAGE_TTL,
        stale_if_error: float = DEFAULT_STALE_IF_ERROR,
        lease: float = DEFAULT_LEASE,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._fetch = fetch
        self._clock = clock
        self._ttl = ttl
        self._stale = stale_if_error
        self._lease = lease
        self._scope = hashlib.sha256(scope.encode()).hexdigest()[:12]
        self._keys: dict[tuple[str, Color], str] = {}  # (path, colour) → its key
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._retry_at: dict[str, float] = {}
        observed = metrics or Metrics()
        self._hit, self._stale_hit, self._miss = (
            observed.tally.counter(observed.cache.labels("page", outcome))
            for outcome in ("hit", "stale", "miss")
        )
        self._coalescer = Coalescer(
            store, lease=lease, on_join=observed.coalesced.labels("page").inc
        )
        self.flight = self._coalescer.flight

    def key(self, path: str, color: Color) -> str:
        return f"page:{self._scope}:{path}:{color}"

    def cached(self, path: str, color: Color) -> SplitPage | None:
        """The page if this process holds a servable one; never waits."""
        key = self._keys.get((path, color))
        if key is None:
            key = self.key(path, color)
            if len(self._keys) < MAX_KEYS:
                self._keys[path, color] = key
        entry = self._store.peek(key, PageEntry)
        if entry is not None and self._clock() < entry.fresh_until:
            self._hit()  # fresh: `_serve` without a call
            return entry.page
        return self._serve(key, path, color, entry)

    async def fetch(self, path: str, color: Color) -> SplitPage:
        """The page from the shared store, or one upstream fetch shared by every caller."""
        key = self.key(path, color)
        page = self._serve(key, path, color, await self._store.get(key, PageEntry))
        if page is not None:
            return page
        self._miss()
        entry = await self._coalescer.load(
            key, lambda: self._read(key), lambda: self._download(key, path, color, None)
        )
        return entry.page

    def _serve(
        self, key: str, path: str, color: Color, entry: PageEntry | None
    ) -> SplitPage | None:
        if entry is None:
            return None
        now = self._clock()
        if now >= entry.expires_at:
            return None
        if now >= entry.fresh_until:
            self._stale_hit()
            self._refresh_soon(key, path, color, entry)
        else:
            self._hit()
        return entry.page

    async def _read(self, key: str) -> PageEntry | None:
        entry = await self._store.get(key, PageEntry)
        return entry if entry is not None and entry.expires_at > self._clock() else None

    async def _download(
        self, key: str, path: str, color: Color, known: PageEntry | None
    ) -> PageEntry:
        etag = known.etag if known else None
        last_modified = known.last_modified if known else None
        fetched = await self._fetch(path, color, etag, last_modified)
        now = self._clock()
        if fetched.page is None:  # 304: the page we have is still the page
            assert known is not None
            page, etag, last_modified = known.page, known.etag, known.last_modified
        else:
            page, etag, last_modified = fetched.page, fetched.etag, fetched.last_modified
        entry = PageEntry(page, etag, last_modified, now + self._ttl, now + self._ttl + self._stale)
        await self._store.set(key, entry)
        return entry

    def _refresh_soon(self, key: str, path: str, color: Color, stale: PageEntry) -> None:
        if key in self._refreshing or self._clock() < self._retry_at.get(key, 0.0):
            return
        task = asyncio.ensure_future(self._refresh(key, path, color, stale))
        self._refreshing[key] = task
        task.add_done_callback(lambda _: self._refreshing.pop(key, None))

    async def _refresh(self, key: str, path: str, color: Color, stale: PageEntry) -> None:
        try:
            await self.flight.run(key, lambda: self._revalidate(key, path, color, stale))
        except Exception as exc:  # whatever broke, the back-off holds: no refresh storm
            self._retry_at[key] = self._clock() + min(REFRESH_BACKOFF, self._ttl)
            reason = exc.detail if isinstance(exc, UpstreamError) else type(exc).__name__
            log.warning(
                "page refresh failed: %s; serving the cached page for up to %.0f s more",
                reason,
                max(0.0, stale.expires_at - self._clock()),
            )
        else:
            self._retry_at.pop(key, None)

    async def _revalidate(self, key: str, path: str, color: Color, stale: PageEntry) -> PageEntry:
        latest = await self._store.get(key, PageEntry, local=False)  # refreshed elsewhere?
        if latest is not None and latest.fresh_until > self._clock():
            return latest
        owner = await self._store.acquire(key, self._lease)
        if owner is None:
            return latest or stale  # another process is refreshing it right now
        try:
            return await self._download(key, path, color, latest or stale)
        finally:
            await self._store.release(key, owner)
