"""Neuroon: one shop-scoped widget token for every user of the shop.

Remote mode (the default) asks Neuroon's API for one and treats it as opaque: nothing
about its format is assumed, only that it is a string, valid 24 h from its issue.
Local mode signs it here, as Neuroon's signing recipe defines it:
`base64url_nopad(f"{shop}:{ts}:{hex(HMAC_SHA256(api_key, f'{shop}:{ts}'))}")`.
Either way a token can't be renewed, so it is re-issued after `NEUROON_ROTATE_AFTER`
(23 h): never served older.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from base64 import urlsafe_b64encode
from collections.abc import Callable

from ...cache.tokens import TokenEntry
from ...errors import UpstreamBadResponse
from ...ops.metrics import Metrics
from ...secret import Secret
from ...security.identity import Identity
from ...upstream.client import HttpClient
from ...upstream.keyring import KeyRing
from .settings import DEFAULT_ROTATE_AFTER, NeuroonSettings

KEY_REFUSED = frozenset({401, 403})


def shop_token(shop_id: str, api_key: str, timestamp: int) -> str:
    message = f"{shop_id}:{timestamp}"
    signature = hmac.new(api_key.encode(), message.encode(), hashlib.sha256).hexdigest()
    return urlsafe_b64encode(f"{message}:{signature}".encode()).rstrip(b"=").decode()


class NeuroonTokens:
    def __init__(
        self,
        http: HttpClient,
        *,
        shop_id: str,
        keys: KeyRing,
        api_url: str | None = None,  # remote mode: the token is asked for there
        rotate_after: float = DEFAULT_ROTATE_AFTER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._clock = clock
        self._shop = shop_id
        self.keys = keys
        self._url = None if api_url is None else f"{api_url}/api/shops/{shop_id}/widget-token"
        self._rotate_after = rotate_after

    def cache_key(self, identity: Identity) -> str:
        return self._shop  # one token for the whole shop

    async def issue(self, identity: Identity) -> TokenEntry:
        if self._url is not None:
            token = await self.keys.call(self.fetch)
            issued = self._clock()
        else:
            issued = float(int(self._clock()))
            token = shop_token(self._shop, self.keys.key.reveal(), int(issued))
        return TokenEntry(token, issued + self._rotate_after, issued)

    async def fetch(self, key: Secret) -> str:
        """A shop token from Neuroon's API under `key` (remote mode)."""
        assert self._url is not None
        reply = await self._http.call(
            "token issue",
            "POST",
            self._url,
            headers={"x-shop-api-key": key.reveal(), "accept": "application/json"},
            key_statuses=KEY_REFUSED,
        )
        try:
            data = json.loads(reply.text)
        except ValueError:
            raise UpstreamBadResponse("token issue answered with a body that is not JSON") from None
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token.strip():
            raise UpstreamBadResponse("token issue answer has no token string")
        return token


def neuroon_tokens(
    settings: NeuroonSettings, http: HttpClient, metrics: Metrics | None = None
) -> NeuroonTokens:
    remote = settings.token_mode == "remote"  # noqa: S105
    keys = KeyRing.of("NEUROON_API_KEY", settings.api_key, settings.api_key_next, metrics)
    return NeuroonTokens(
        http,
        shop_id=settings.shop_id,
        keys=keys,
        api_url=settings.api_url if remote else None,
        rotate_after=settings.rotate_after,
    )
