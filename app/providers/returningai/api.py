"""The Returning.AI widget server: sign a user in, fetch a widget page."""

from __future__ import annotations

import asyncio
import json
from typing import Final

from ...cache.pages import PageFetch
from ...delivery.inject import split_page
from ...delivery.page import Color
from ...errors import UpstreamBadResponse
from ...ops.metrics import Metrics
from ...secret import Secret
from ...upstream.client import HttpClient
from ...upstream.keyring import KeyRing
from .settings import ReturningAISettings

# The signin answers these when it refuses our API key; they are never retried.
KEY_REFUSED: Final = frozenset({401, 403})


class ReturningAIApi:
    def __init__(
        self, http: HttpClient, *, base_url: str, community_id: str, keys: KeyRing
    ) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._signin_url = f"{self._base}/widget/{community_id}/signin"
        self.keys = keys

    async def signin(self, email: str) -> str:
        """Exchange the API key in use (and the user's email) for a widget token."""
        return await self.keys.call(lambda key: self.signin_with(key, email))

    async def signin_with(self, key: Secret, email: str) -> str:
        """A signin under this `key`, whichever key is in use (`check` tries each)."""
        headers = {
            "content-type": "application/json",
            "returningai-api-key": key.reveal(),
            "email": email,
        }
        reply = await self._http.call(
            "signin", "POST", self._signin_url, headers=headers, key_statuses=KEY_REFUSED
        )
        try:
            data = json.loads(reply.text)
        except ValueError:
            raise UpstreamBadResponse("signin answered with a body that is not JSON") from None
        token = data.get("token") if isinstance(data, dict) else None
        if token is None:
            raise UpstreamBadResponse("signin answer has no token")
        if not isinstance(token, str):
            raise UpstreamBadResponse(f"signin token is a {type(token).__name__}, not a string")
        if not token:
            raise UpstreamBadResponse("signin token is empty")
        return token

    async def page(
        self,
        path: str,
        color: Color,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> PageFetch:
        """Fetch the widget page at `path` split around its token placeholder.

        With `etag` or `last_modified` from an earlier answer the request is
        conditional, and a 304 comes back as a PageFetch without a page.
        """
        headers = {"accept": "text/html"}
        if etag:
            headers["if-none-match"] = etag
        if last_modified:
            headers["if-modified-since"] = last_modified
        reply = await self._http.call(
            "page", "GET", f"{self._base}{path}", headers=headers, params={"color": color}
        )
        validators = reply.headers.get("etag"), reply.headers.get("last-modified")
        if reply.status == 304:
            return PageFetch(None, *validators)
        # Splitting is a scan of the whole page: off the event loop, so a large hostile
        # page delays no other request (it runs once per fetch, never per view).
        page = await asyncio.to_thread(split_page, reply.text, base_href=reply.url)
        return PageFetch(page, *validators)


def returningai_api(
    settings: ReturningAISettings, http: HttpClient, metrics: Metrics | None = None
) -> ReturningAIApi:
    keys = KeyRing.of("WIDGET_API_KEY", settings.api_key, settings.api_key_next, metrics)
    return ReturningAIApi(
        http, base_url=settings.base_url, community_id=settings.community_id, keys=keys
    )
