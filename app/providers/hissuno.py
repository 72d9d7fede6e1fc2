"""Hissuno: a per-user HS256 JWT signed here with the project's secret key."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import jwt

from app.identity import Identity
from app.providers.base import Hasher, TokenEntry
from app.settings import Settings


class HissunoProvider:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self._secret = settings.hissuno_secret_key
        self._ttl = settings.hissuno_token_ttl
        self._margin = settings.token_refresh_margin
        self._clock = clock
        self._hash = Hasher(settings, b"widget-proxy hissuno token key")

    def cache_key(self, identity: Identity) -> str:
        # The claims are in the key: a user whose name changes gets a new token.
        claims = json.dumps([identity.user_id, identity.metadata])
        return "tok:hissuno:" + self._hash(claims)

    def claims(self, identity: Identity, now: int) -> dict[str, object]:
        claims: dict[str, object] = {"userId": identity.user_id, "iat": now, "exp": now + self._ttl}
        if identity.metadata:
            claims["userMetadata"] = dict(identity.metadata)
        return claims

    async def issue(self, identity: Identity) -> TokenEntry:
        now = int(self._clock())
        token = jwt.encode(self.claims(identity, now), self._secret.reveal(), algorithm="HS256")
        return TokenEntry(token, now + self._ttl - self._margin, now)
