"""The token provider interface: how a vendor's widget token is obtained.

A provider says whose token a request needs (`cache_key`) and how to get one
(`issue`); the token cache, coalescing, retries, rate limits and error pages around
it are shared. How the token reaches the browser is the delivery's business
(`app.delivery`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from base64 import urlsafe_b64decode
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, Self

from app.errors import UpstreamBadResponse
from app.identity import Identity
from app.settings import Settings


@dataclass(frozen=True, slots=True)
class TokenEntry:
    token: str
    expires_at: float  # never served after this (its exp minus the margin, or rotation)
    issued_at: float

    def to_bytes(self) -> bytes:
        return f"{self.expires_at!r}\n{self.issued_at!r}\n{self.token}".encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        expires, issued, token = data.decode().split("\n", 2)
        if not token:
            raise ValueError("not a token entry")
        return cls(token, float(expires), float(issued))


class TokenProvider(Protocol):
    def cache_key(self, identity: Identity) -> str:
        """Whose token this request needs, as a key that holds no personal data."""

    async def issue(self, identity: Identity) -> TokenEntry:
        """A new token for `identity`, and until when it may be served."""


class Hasher:
    """HMAC-SHA256 under a key derived from SESSION_SECRET: stable, and says nothing.

    The same users and addresses come back on every page view, so recent answers are
    remembered rather than recomputed.
    """

    def __init__(self, settings: Settings, purpose: bytes) -> None:
        self._key = hmac.new(settings.session_secret.reveal().encode(), purpose, "sha256").digest()
        self._memo = lru_cache(maxsize=4096)(self._digest)  # the active users, not all

    def __call__(self, value: str) -> str:
        return self._memo(value)

    def _digest(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()[:32]


def jwt_exp(token: str) -> float | None:
    """The `exp` claim of a JWT, unverified; None when there is none to read.

    Read only to time the cache, never to authorise anything.
    """
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


class JwtLifetime:
    """Until when a JWT may be served: `exp` minus TOKEN_REFRESH_MARGIN, at most
    TOKEN_MAX_TTL from now; TOKEN_DEFAULT_TTL when `exp` can't be read."""

    def __init__(self, settings: Settings, *, cap: bool = True) -> None:
        self._margin = settings.token_refresh_margin
        self._max_ttl = settings.token_max_ttl if cap else float("inf")
        self._default_ttl = min(settings.token_default_ttl, self._max_ttl)

    def entry(self, token: str, now: float) -> TokenEntry:
        exp = jwt_exp(token)
        if exp is None:
            return TokenEntry(token, now + self._default_ttl, now)
        if exp <= now:
            raise UpstreamBadResponse("the issued token is already expired")
        return TokenEntry(token, min(exp - self._margin, now + self._max_ttl), now)
