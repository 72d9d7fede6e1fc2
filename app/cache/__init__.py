"""Caching and coalescing: zero upstream calls on a warm page view."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from .keys import Hasher, Keys
from .loader import Loader, SingleFlight
from .memory import DEFAULT_MAX_ENTRIES, MemoryStore
from .pages import PageCache, PageEntry, PageFetch
from .redis import RedisStore
from .store import Counters, Entries, Entry, Locks, SharedStore, Store
from .tiered import TieredStore
from .tokens import TokenCache, TokenEntry, TokenIssuer

__all__ = [
    "Counters",
    "Entries",
    "Entry",
    "Hasher",
    "Keys",
    "Loader",
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
]


def open_store(url: str, *, max_entries: int = DEFAULT_MAX_ENTRIES) -> Store:
    """`memory://` → one process's memory; a Redis URL → memory in front of Redis."""
    local = MemoryStore(max_entries)
    if url == "memory://":
        return local
    return TieredStore(local, RedisStore(url), where=redacted_url(url))


def redacted_url(url: str) -> str:
    """The URL without its password, for log lines."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))
