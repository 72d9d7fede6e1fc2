"""Widget tokens, cached per (community, user) until shortly before they expire.

The key holds no email: it is an HMAC of the email under a key derived from
`SESSION_SECRET`, so nothing personal sits in Redis key names. A token's `exp` is
read without verification and only to time the cache, never to authorise anything.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from base64 import urlsafe_b64decode
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Self

from app.cache.coalesce import SingleFlight, fill, lock_lease
from app.cache.store import Store
from app.errors import UpstreamBadResponse
from app.settings import Settings

log = logging.getLogger("widget_proxy.cache")


@dataclass(frozen=True, slots=True)
class TokenEntry:
    token: str
    expires_at: float  # `exp` minus the refresh margin: never served after this

    def to_bytes(self) -> bytes:
        return f"{self.expires_at!r}\n{self.token}".encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        expires, sep, token = data.decode().partition("\n")
        if not sep or not token:
            raise ValueError("not a token entry")
        return cls(token, float(expires))


def jwt_exp(token: str) -> float | None:
    """The `exp` claim of a JWT, unverified; None when there is none to read."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return float(exp)


class TokenCache:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        signin: Callable[[str], Awaitable[str]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._signin = signin
        self._clock = clock
        self._hash_key = hmac.new(
            settings.session_secret.reveal().encode(), b"widget-proxy token cache key", "sha256"
        ).digest()
        self._prefix = f"tok:{settings.widget_community_id}:"
        self._margin = settings.token_refresh_margin
        self._max_ttl = settings.token_max_ttl
        self._default_ttl = min(settings.token_default_ttl, settings.token_max_ttl)
        self._lease = lock_lease(settings)
        self.flight = SingleFlight()

    def key(self, email: str) -> str:
        digest = hmac.new(self._hash_key, email.encode(), hashlib.sha256).hexdigest()
        return self._prefix + digest[:32]

    def cached(self, key: str) -> str | None:
        """The token if this process holds a live one; never waits."""
        entry = self._store.peek(key, TokenEntry)
        return entry.token if entry is not None and entry.expires_at > self._clock() else None

    async def fetch(self, key: str, email: str) -> str:
        """The token from the shared store, or one signin shared by every caller."""
        entry = await self._read(key)
        if entry is None:
            entry = await self.flight.run(
                key, lambda: fill(self._store, key, lambda: self._read(key),
                                  lambda: self._issue(key, email), self._lease)
            )  # fmt: skip
        return entry.token

    async def _read(self, key: str) -> TokenEntry | None:
        entry = await self._store.get(key, TokenEntry)
        return entry if entry is not None and entry.expires_at > self._clock() else None

    async def _issue(self, key: str, email: str) -> TokenEntry:
        token = await self._signin(email)
        now = self._clock()
        exp = jwt_exp(token)
        if exp is None:
            return await self._keep(key, TokenEntry(token, now + self._default_ttl))
        if exp <= now:
            raise UpstreamBadResponse("signin token is already expired")
        entry = TokenEntry(token, min(exp - self._margin, now + self._max_ttl))
        if entry.expires_at <= now:
            # It can't be cached without serving it inside the margin; this request
            # still gets it, fresh from upstream, rather than an error.
            log.warning(
                "signin token lives %.0f s, less than TOKEN_REFRESH_MARGIN (%.0f s): not cached",
                exp - now,
                self._margin,
            )
            return entry
        return await self._keep(key, entry)

    async def _keep(self, key: str, entry: TokenEntry) -> TokenEntry:
        await self._store.set(key, entry)
        return entry
