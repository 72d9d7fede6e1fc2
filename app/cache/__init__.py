"""Caching and coalescing: zero upstream calls on a warm page view."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from app.cache.memory import MemoryStore
from app.cache.pages import PageCache, PageEntry
from app.cache.redis import RedisStore
from app.cache.store import Store
from app.cache.tiered import TieredStore
from app.cache.tokens import TokenCache
from app.providers.base import TokenEntry
from app.settings import Settings

__all__ = [
    "MemoryStore",
    "PageCache",
    "PageEntry",
    "RedisStore",
    "Store",
    "TieredStore",
    "TokenCache",
    "TokenEntry",
    "open_store",
    "redacted_url",
]


def open_store(settings: Settings) -> Store:
    """`CACHE_URL=memory://` → one process's memory; a Redis URL → memory in front of Redis."""
    url = settings.cache_url.reveal()
    local = MemoryStore(settings.cache_max_entries)
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
