"""Returning.AI tokens: a remote signin per user with the server-only API key."""

from __future__ import annotations

import time
from collections.abc import Callable

from ...cache.keys import Keys
from ...cache.tokens import JwtLifetime, TokenEntry
from ...security.identity import Identity
from .api import ReturningAIApi


class ReturningAITokens:
    def __init__(
        self,
        api: ReturningAIApi,
        *,
        keys: Keys,
        community_id: str,
        lifetime: JwtLifetime = JwtLifetime(),  # noqa: B008 - frozen value
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api = api
        self._clock = clock
        self._lifetime = lifetime
        self._hash = keys.hasher(b"widget-proxy token cache key")
        self._prefix = f"{community_id}:"

    def cache_key(self, identity: Identity) -> str:
        return self._prefix + self._hash(identity.email)

    async def issue(self, identity: Identity) -> TokenEntry:
        token = await self._api.signin(identity.email)
        return self._lifetime.entry(token, self._clock())
