"""Returning.AI: a remote signin per user with the server-only API key."""

from __future__ import annotations

import time
from collections.abc import Callable

from app.identity import Identity
from app.providers.base import Hasher, JwtLifetime, TokenEntry
from app.settings import Settings
from app.upstream import Upstream


class ReturningAIProvider:
    def __init__(
        self, settings: Settings, upstream: Upstream, clock: Callable[[], float] = time.time
    ) -> None:
        self._upstream = upstream
        self._clock = clock
        self._lifetime = JwtLifetime(settings)
        self._hash = Hasher(settings, b"widget-proxy token cache key")
        self._prefix = f"tok:{settings.widget_community_id}:"

    def cache_key(self, identity: Identity) -> str:
        return self._prefix + self._hash(identity.email)

    async def issue(self, identity: Identity) -> TokenEntry:
        token = await self._upstream.signin(identity.email)
        return self._lifetime.entry(token, self._clock())
