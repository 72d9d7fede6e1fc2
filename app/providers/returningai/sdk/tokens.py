"""Access Key Embed tokens: the access pair and the visitor's identifiers exchanged for
a short-lived embed token (a JWT, about 15 minutes), one per visitor.

    POST {RETURNINGAI_API_URL}/v2/api/widget-access-keys/token
    {"accessId": …, "accessKey": …, "userIdentifiers": {"data-email": …}}
    → {"data": {"embedToken": "<JWT>", "expiresIn": <seconds>}}
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Final

from ....cache.keys import Keys
from ....cache.tokens import DEFAULT_LIFETIME, JwtLifetime, TokenEntry
from ....errors import IncompleteSession, UpstreamBadResponse
from ....ops.metrics import Metrics
from ....secret import Secret
from ....security.identity import Identity
from ....upstream.client import HttpClient
from ....upstream.keyring import KeyRing
from .settings import ReturningAISdkSettings

KEY_REFUSED: Final = frozenset({401, 403})
TOKEN_PATH: Final = "/v2/api/widget-access-keys/token"  # noqa: S105 - a path


class AccessKeyTokens:
    def __init__(
        self,
        http: HttpClient,
        *,
        api_url: str,
        access_id: str,
        keys: KeyRing,
        identifiers: tuple[tuple[str, str], ...] = (("data-email", "email"),),
        hashes: Keys,
        lifetime: JwtLifetime = DEFAULT_LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._url = api_url.rstrip("/") + TOKEN_PATH
        self._access_id = access_id
        self.keys = keys
        self._identifiers = identifiers
        self._hash = hashes.hasher(b"widget-proxy returningai-sdk token key")
        self._lifetime = lifetime
        self._clock = clock

    def user_identifiers(self, identity: Identity) -> dict[str, str]:
        """The visitor's `data-*` identifiers, as the widget's User Identifier Fields name them."""
        found: dict[str, str] = {}
        metadata = dict(identity.metadata)
        for field, source in self._identifiers:
            if source == "email":
                value = identity.email
            elif source == "user_id":
                value = identity.user_id
            else:
                value = metadata.get(source, "")
            if not value:
                raise IncompleteSession(f"the session has no {source}, needed for {field}")
            found[field] = value
        return found

    def cache_key(self, identity: Identity) -> str:
        # The identifiers are the token's identity: other values, another token.
        return self._hash(json.dumps(self.user_identifiers(identity), sort_keys=True))

    async def issue(self, identity: Identity) -> TokenEntry:
        identifiers = self.user_identifiers(identity)
        token, expires_in = await self.keys.call(lambda key: self.fetch(key, identifiers))
        return self._lifetime.entry(token, self._clock(), expires_in)

    async def fetch(self, key: Secret, identifiers: dict[str, str]) -> tuple[str, float | None]:
        """An embed token under `key` (and its `expiresIn`), whichever key is in use."""
        body = {
            "accessId": self._access_id,
            "accessKey": key.reveal(),
            "userIdentifiers": identifiers,
        }
        reply = await self._http.call(
            "token issue",
            "POST",
            self._url,
            headers={"content-type": "application/json", "accept": "application/json"},
            content=json.dumps(body).encode(),
            key_statuses=KEY_REFUSED,
        )
        return parse_answer(reply.text)


def parse_answer(text: str) -> tuple[str, float | None]:
    """`data.embedToken` and `data.expiresIn` from the vendor's answer, or why not."""
    try:
        answer = json.loads(text)
    except ValueError:
        raise UpstreamBadResponse("token issue answered with a body that is not JSON") from None
    data = answer.get("data") if isinstance(answer, dict) else None
    token = data.get("embedToken") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token.strip():
        raise UpstreamBadResponse("token issue answer has no data.embedToken string")
    assert isinstance(data, dict)
    expires_in = data.get("expiresIn")
    if expires_in is None:
        return token, None
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or expires_in <= 0:
        raise UpstreamBadResponse("token issue answer's data.expiresIn is not a positive number")
    return token, float(expires_in)


def access_key_tokens(
    settings: ReturningAISdkSettings,
    http: HttpClient,
    *,
    hashes: Keys,
    lifetime: JwtLifetime = DEFAULT_LIFETIME,
    metrics: Metrics | None = None,
) -> AccessKeyTokens:
    keys = KeyRing.of(
        "RETURNINGAI_ACCESS_KEY", settings.access_key, settings.access_key_next, metrics
    )
    return AccessKeyTokens(
        http,
        api_url=settings.api_url,
        access_id=settings.access_id,
        keys=keys,
        identifiers=settings.user_identifiers,
        hashes=hashes,
        lifetime=lifetime,
    )
