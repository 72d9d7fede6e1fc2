"""The one HTTP client to the vendor: signin and widget page, each failure typed.

Every transport or protocol failure becomes one of the `UpstreamError`s in
`app.errors`; the upstream's body is never copied into an error, so it can't reach
a browser or a log line.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Final

import httpx2

from app import __version__
from app.errors import (
    UpstreamBadResponse,
    UpstreamBadStatus,
    UpstreamBusy,
    UpstreamError,
    UpstreamRejectedKey,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from app.inject import SplitPage, split_page
from app.settings import Settings
from app.widgets import Color, Widget

log = logging.getLogger("widget_proxy.upstream")

USER_AGENT: Final = f"widget-proxy/{__version__}"


@dataclass(frozen=True, slots=True)
class PageFetch:
    """What the upstream answered for a page: the page, or None for 304 Not Modified."""

    page: SplitPage | None
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: httpx2.Headers
    text: str


class Upstream:
    """Talks to `WIDGET_BASE_URL` through one long-lived connection pool."""

    def __init__(
        self, settings: Settings, *, transport: httpx2.AsyncBaseTransport | None = None
    ) -> None:
        self._base = settings.widget_base_url
        self._signin_url = f"{self._base}/widget/{settings.widget_community_id}/signin"
        self._api_key = settings.widget_api_key
        self._max_bytes = settings.upstream_max_bytes
        # The client binds to no event loop until first used, so an app mounted
        # inside another (whose lifespan never reaches us) still works.
        self._client = httpx2.AsyncClient(
            timeout=httpx2.Timeout(
                connect=settings.upstream_connect_timeout,
                read=settings.upstream_read_timeout,
                write=settings.upstream_read_timeout,
                pool=settings.upstream_pool_timeout,
            ),
            limits=httpx2.Limits(
                max_connections=settings.upstream_max_connections,
                max_keepalive_connections=settings.upstream_max_connections,
            ),
            follow_redirects=False,
            headers={"user-agent": USER_AGENT},
            transport=transport,
        )

    def page_url(self, widget: Widget) -> str:
        return f"{self._base}{widget.path}"

    async def signin(self, email: str) -> str:
        """Exchange the API key and the user's email for a widget token."""
        headers = {
            "content-type": "application/json",
            "returningai-api-key": self._api_key.reveal(),
            "email": email,
        }
        reply = await self._fetch("signin", "POST", self._signin_url, headers, {})
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
        widget: Widget,
        color: Color,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> PageFetch:
        """Fetch the widget page split around its token placeholder; revalidate if told how.

        With `etag` or `last_modified` from an earlier answer the request is
        conditional, and a 304 comes back as a PageFetch without a page.
        """
        url = self.page_url(widget)
        headers = {"accept": "text/html"}
        if etag:
            headers["if-none-match"] = etag
        if last_modified:
            headers["if-modified-since"] = last_modified
        reply = await self._fetch("page", "GET", url, headers, {"color": color})
        validators = reply.headers.get("etag"), reply.headers.get("last-modified")
        if reply.status == 304:
            return PageFetch(None, *validators)
        return PageFetch(split_page(reply.text, base_href=f"{url}?color={color}"), *validators)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _fetch(
        self, kind: str, method: str, url: str, headers: dict[str, str], params: dict[str, str]
    ) -> Reply:
        started = time.perf_counter()
        try:
            reply = await self._read(kind, method, url, headers, params)
        except UpstreamError as exc:
            log.warning(
                "upstream %s failed in %.0f ms: %s",
                kind,
                (time.perf_counter() - started) * 1000,
                exc.detail,
            )
            raise
        log.debug(
            "upstream %s answered %d in %.0f ms",
            kind,
            reply.status,
            (time.perf_counter() - started) * 1000,
        )
        return reply

    async def _read(
        self, kind: str, method: str, url: str, headers: dict[str, str], params: dict[str, str]
    ) -> Reply:
        conditional = "if-none-match" in headers or "if-modified-since" in headers
        try:
            async with self._client.stream(method, url, headers=headers, params=params) as response:
                if conditional and response.status_code == 304:
                    return Reply(304, response.headers, "")
                _check_status(kind, response)
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self._max_bytes:
                    raise _too_large(kind, self._max_bytes)
                body = bytearray()
                # Decoded bytes are counted, so a small compressed bomb is caught too.
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self._max_bytes:
                        raise _too_large(kind, self._max_bytes)
                text = _decode(bytes(body), response.charset_encoding)
                return Reply(response.status_code, response.headers, text)
        except httpx2.TimeoutException:
            raise UpstreamTimeout(f"{kind} timed out") from None
        except httpx2.DecodingError:
            raise UpstreamBadResponse(f"{kind} body could not be decoded") from None
        except httpx2.TransportError as exc:
            raise UpstreamUnavailable(f"{kind} connection failed ({type(exc).__name__})") from None


def _check_status(kind: str, response: httpx2.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    if kind == "signin" and status in (401, 403):
        raise UpstreamRejectedKey(f"the upstream rejected the API key ({status})")
    if status in (429, 503):
        raise UpstreamBusy(
            f"{kind} answered {status}",
            retry_after=_retry_after(response.headers.get("retry-after")),
        )
    raise UpstreamBadStatus(f"{kind} answered {status}")


def _too_large(kind: str, limit: int) -> UpstreamBadResponse:
    return UpstreamBadResponse(f"{kind} body is larger than {limit} bytes")


def _decode(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


def _retry_after(value: str | None) -> str | None:
    """Delay-seconds as the upstream sent it, or an HTTP-date turned into seconds."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit() and len(value) <= 9:
        return value
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return str(max(0, round(when.timestamp() - time.time())))
