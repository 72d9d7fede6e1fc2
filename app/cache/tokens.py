"""Widget tokens, cached until shortly before they expire, one issue per key.

Whose token it is and how it is issued is the provider's business; this module keeps
it: in the store until its `expires_at`, with concurrent misses coalesced into one
issue, across processes too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from app.cache.coalesce import SingleFlight, fill, lock_lease
from app.cache.store import Store
from app.identity import Identity
from app.metrics import Metrics
from app.providers.base import TokenEntry, TokenProvider
from app.settings import Settings

log = logging.getLogger("widget_proxy.cache")


class TokenCache:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        provider: TokenProvider,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._provider = provider
        self._clock = clock
        self._margin = settings.token_refresh_margin
        self._lease = lock_lease(settings)
        events = (metrics or Metrics()).cache
        self._hit, self._miss = events.labels("token", "hit"), events.labels("token", "miss")
        joined = (metrics or Metrics()).coalesced.labels("token")
        self.flight = SingleFlight(on_join=joined.inc)

    def key(self, identity: Identity) -> str:
        return self._provider.cache_key(identity)

    def cached(self, key: str) -> str | None:
        """The token if this process holds a live one; never waits."""
        entry = self._store.peek(key, TokenEntry)
        if entry is None or entry.expires_at <= self._clock():
            return None
        self._hit.inc()
        return entry.token

    async def fetch(self, key: str, identity: Identity) -> str:
        """The token from the shared store, or one issue shared by every caller."""
        entry = await self._read(key)
        (self._hit if entry is not None else self._miss).inc()
        if entry is None:
            entry = await self.flight.run(
                key, lambda: fill(self._store, key, lambda: self._read(key),
                                  lambda: self._issue(key, identity), self._lease)
            )  # fmt: skip
        return entry.token

    async def _read(self, key: str) -> TokenEntry | None:
        entry = await self._store.get(key, TokenEntry)
        return entry if entry is not None and entry.expires_at > self._clock() else None

    async def _issue(self, key: str, identity: Identity) -> TokenEntry:
        entry = await self._provider.issue(identity)
        if entry.expires_at <= self._clock():
            # It can't be cached without serving it inside the margin; this request
            # still gets it, fresh, rather than an error.
            log.warning(
                "the issued token lives less than TOKEN_REFRESH_MARGIN (%.0f s): not cached",
                self._margin,
            )
            return entry
        await self._store.set(key, entry)
        return entry
