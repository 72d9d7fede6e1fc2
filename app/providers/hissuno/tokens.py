"""Hissuno: a per-user HS256 JWT signed here with the project's secret key."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Final

import jwt

from ...cache.keys import Keys
from ...cache.tokens import DEFAULT_LIFETIME, TokenEntry
from ...secret import Secret
from ...security.identity import Identity

DEFAULT_TTL: Final = 86400  # a day: a user JWT outlives any widget session


class HissunoTokens:
    def __init__(
        self,
        *,
        secret: Secret,
        keys: Keys,
        ttl: int = DEFAULT_TTL,
        margin: float = DEFAULT_LIFETIME.margin,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self._ttl = ttl
        self._margin = margin
        self._clock = clock
        self._hash = keys.hasher(b"widget-proxy hissuno token key")

    def cache_key(self, identity: Identity) -> str:
        # The claims are in the key: a user whose name changes gets a new token.
        claims = json.dumps([identity.user_id, identity.metadata])
        return self._hash(claims)

    def claims(self, identity: Identity, now: int) -> dict[str, object]:
        claims: dict[str, object] = {"userId": identity.user_id, "iat": now, "exp": now + self._ttl}
        if identity.metadata:
            claims["userMetadata"] = dict(identity.metadata)
        return claims

    async def issue(self, identity: Identity) -> TokenEntry:
        now = int(self._clock())
        token = jwt.encode(self.claims(identity, now), self._secret.reveal(), algorithm="HS256")
        return TokenEntry(token, now + self._ttl - self._margin, now)
