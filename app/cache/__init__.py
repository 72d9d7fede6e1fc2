"""Caching and coalescing: zero upstream calls on a warm page view."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..ops.metrics import Metrics
from .flight import Coalescer, SingleFlight
from .keys import Hasher, Keys
from .memory import DEFAULT_MAX_ENTRIES, MemoryStore
from .pages import PageCache, PageEntry, PageFetch
from .redis import RedisStore
from .store import Entries, Entry, Locks, SharedStore, Store
from .tiered import TieredStore
from .tokens import TokenCache, TokenEntry, TokenIssuer
from .urls import Topology, redacted_url, topology, url_secrets

__all__ = [
    "Coalescer",
    "Entries",
    "Entry",
    "Hasher",
    "Keys",
    "Locks",
    "MemoryStore",
    "PageCache",
    "PageEntry",
    "PageFetch",
    "RedisStore",
    "SharedStore",
    "SingleFlight",
    "Store",
    "TieredStore",
    "TokenCache",
    "TokenEntry",
    "TokenIssuer",
    "Topology",
    "open_store",
    "redacted_url",
    "url_secrets",
]


def open_store(
    where: Topology | str,
    *,
    secret: str,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    metrics: Metrics | None = None,
    clock: Callable[[], float] = time.time,
) -> Store:
    """`memory://` → one process's memory; a Redis URL → memory in front of Redis: one
    server, the master a Sentinel names (`redis+sentinel://`), or a Cluster
    (`redis+cluster://`); see `topology` (a string is read here; the settings give
    the `Topology` they read at start-up).

    `secret` (SESSION_SECRET) keys the MACs that bind each shared value to its key.
    """
    where = topology(where) if isinstance(where, str) else where
    local = MemoryStore(max_entries, clock=clock)
    if where.kind == "memory":
        return local
    shared = RedisStore(where, secret=secret, clock=clock)
    return TieredStore(local, shared, where=where.shown, metrics=metrics)
