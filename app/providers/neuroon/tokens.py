"""Neuroon: one shop-scoped widget token for every user of the shop.

Local mode signs the token here, exactly as Neuroon defines it:
`base64url_nopad(f"{shop}:{ts}:{hex(HMAC_SHA256(api_key, f'{shop}:{ts}'))}")`.
Remote mode asks Neuroon's API for one. Either way a token is valid 24 h and can't be
renewed, so it is re-issued after `NEUROON_ROTATE_AFTER` (23 h): never served older.
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
from ...options import Secret
from ...security.identity import Identity
from ...upstream.client import HttpClient
from .settings import NeuroonSettings

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
        api_key: Secret,
        api_url: str | None = None,  # remote mode: the token is asked for there
        rotate_after: float = 23 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._clock = clock
        self._shop = shop_id
        self._api_key = api_key
        self._url = None if api_url is None else f"{api_url}/api/shops/{shop_id}/widget-token"
        self._rotate_after = rotate_after

    def cache_key(self, identity: Identity) -> str:
        return self._shop  # one token for the whole shop

    async def issue(self, identity: Identity) -> TokenEntry:
        if self._url is not None:
            token = await self._fetch(self._url)
            issued = self._clock()
        else:
            issued = float(int(self._clock()))
            token = shop_token(self._shop, self._api_key.reveal(), int(issued))
        return TokenEntry(token, issued + self._rotate_after, issued)

    async def _fetch(self, url: str) -> str:
        reply = await self._http.call(
            "token issue",
            "POST",
            url,
            headers={"x-shop-api-key": self._api_key.reveal(), "accept": "application/json"},
            key_statuses=KEY_REFUSED,
        )
        try:
            data = json.loads(reply.text)
        except ValueError:
            raise UpstreamBadResponse("token issue answered with a body that is not JSON") from None
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise UpstreamBadResponse("token issue answer has no token string")
        return token


def neuroon_tokens(settings: NeuroonSettings, http: HttpClient) -> NeuroonTokens:
    remote = settings.token_mode == "remote"  # noqa: S105
    return NeuroonTokens(
        http,
        shop_id=settings.shop_id,
        api_key=settings.api_key,
        api_url=settings.api_url if remote else None,
        rotate_after=settings.rotate_after,
    )
