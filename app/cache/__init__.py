"""Caching and coalescing: zero upstream calls on a warm page view."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from ..ops.metrics import Metrics
from .flight import Coalescer, SingleFlight
from .keys import Hasher, Keys
from .memory import DEFAULT_MAX_ENTRIES, MemoryStore
from .pages import PageCache, PageEntry, PageFetch
from .redis import RedisStore
from .store import Entries, Entry, Locks, SharedStore, Store
from .tiered import TieredStore
from .tokens import TokenCache, TokenEntry, TokenIssuer

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
    "open_store",
    "redacted_url",
    "url_secrets",
]


def open_store(
    url: str,
    *,
    secret: str,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    metrics: Metrics | None = None,
    clock: Callable[[], float] = time.time,
) -> Store:
    """`memory://` → one process's memory; a Redis URL → memory in front of Redis: one
    server, the master a Sentinel names (`redis+sentinel://`), or a Cluster
    (`redis+cluster://`); see `topology`.

    `secret` (SESSION_SECRET) keys the MACs that bind each shared value to its key.
    """
    local = MemoryStore(max_entries, clock=clock)
    if url == "memory://":
        return local
    shared = RedisStore(url, secret=secret, clock=clock)
    return TieredStore(local, shared, where=redacted_url(url), metrics=metrics)


def url_secrets(url: str) -> list[str]:
    """Every credential a Redis URL can carry: the userinfo password (as written and
    percent-decoded, as it is sent), `?password=`, `?sentinel_password=` and any other
    `…password=` query parameter. The same for every scheme: a Sentinel's or a
    Cluster's list of hosts is in the netloc, after the userinfo."""
    parts = urlsplit(url)
    found = [parts.password] if parts.password else []
    found += [v for k, v in parse_qsl(parts.query) if "password" in k.lower() and v]
    return list(dict.fromkeys([*found, *(unquote(v) for v in found)]))


def redacted_url(url: str) -> str:
    """The URL without its credentials, for anything shown: log lines, checks, errors."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        host = netloc.rpartition("@")[2]
        netloc = (f"{parts.username}:***@" if parts.username else ":***@") + host
    query = urlencode(
        [(k, "***" if "password" in k.lower() else v) for k, v in parse_qsl(parts.query)],
        safe="*/",
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))
