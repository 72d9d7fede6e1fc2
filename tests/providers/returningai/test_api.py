"""The upstream client in isolation: exact requests, body decoding and limits.

These are the narrow unit tests where a mock transport is the right tool; the
integration tests in test_routes.py talk to a real server.
"""

from __future__ import annotations

import email.utils
import gzip
import time
from collections.abc import AsyncIterator, Callable

import httpx2
import pytest

from tests.support import VALID
from widget_proxy.errors import (
    UpstreamBadResponse,
    UpstreamBadStatus,
    UpstreamBusy,
    UpstreamRejectedKey,
)
from widget_proxy.providers.returningai import ReturningAISettings
from widget_proxy.providers.returningai.api import ReturningAIApi, returningai_api
from widget_proxy.providers.returningai.widgets import Widget
from widget_proxy.settings import Settings
from widget_proxy.upstream.client import HttpClient, Limits, Retries

pytestmark = pytest.mark.anyio

PAGE = '<html><head></head><script>window.__WIDGET_INIT__ = { token: "" };</script></html>'


def upstream(
    handler: Callable[[httpx2.Request], httpx2.Response],
    *,
    max_bytes: int = Limits().max_bytes,
    retries: int = Retries().retries,
) -> ReturningAIApi:
    """The API as the proxy builds it from VALID's vendor settings (WIDGET_BASE_URL with
    its trailing slash, WIDGET_COMMUNITY_ID, WIDGET_API_KEY), on a mock transport."""
    http = HttpClient(
        limits=Limits(max_bytes=max_bytes),
        retries=Retries(retries=retries),
        transport=httpx2.MockTransport(handler),
    )
    vendor = Settings.from_env(VALID).vendor
    assert isinstance(vendor, ReturningAISettings)
    return returningai_api(vendor, http)


async def test_signin_request_is_exactly_the_documented_one() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={"token": "jwt-value"})

    client = upstream(handler)
    token = await client.signin("ann@example.com")

    assert token == "jwt-value"
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == "https://widgets.example.com/widget/community-1/signin"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["returningai-api-key"] == VALID["WIDGET_API_KEY"]
    assert request.headers["email"] == "ann@example.com"
    assert request.content == b""


async def test_page_request_and_base_href() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, text=PAGE, headers={"content-type": "text/html"})

    client = upstream(handler)
    fetched = await client.page(Widget("channel", "c-9").path, "dark")

    assert str(seen[0].url) == "https://widgets.example.com/channel/c-9?color=dark"
    assert seen[0].method == "GET"
    assert "if-none-match" not in seen[0].headers
    assert fetched.page is not None
    assert b'<base href="https://widgets.example.com/channel/c-9?color=dark">' in fetched.page.head


async def test_gzip_and_declared_charset_are_decoded() -> None:
    latin = PAGE.replace("<head>", "<head><title>Caf\u00e9</title>")
    body = gzip.compress(latin.encode("latin-1"))

    def handler(request: httpx2.Request) -> httpx2.Response:
        headers = {"content-type": "text/html; charset=ISO-8859-1", "content-encoding": "gzip"}
        return httpx2.Response(200, content=body, headers=headers)

    fetched = await upstream(handler).page(Widget("store", "w-1").path, "light")

    assert fetched.page is not None
    assert "<title>Caf\u00e9</title>".encode() in fetched.page.head  # re-encoded as UTF-8


@pytest.mark.parametrize("declared", [True, False])
async def test_oversized_bodies_are_refused(declared: bool) -> None:
    big = PAGE + "x" * 5000

    def handler(request: httpx2.Request) -> httpx2.Response:
        if declared:
            return httpx2.Response(200, text=big)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"x" * 1000

        return httpx2.Response(200, content=chunks())

    with pytest.raises(UpstreamBadResponse, match="larger than 4096 bytes"):
        await upstream(handler, max_bytes=4096).page(Widget("store", "w-1").path, "light")


async def test_a_gzip_bomb_is_cut_off_by_its_decoded_size() -> None:
    bomb = gzip.compress(b"<" * 1_000_000)

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=bomb, headers={"content-encoding": "gzip"})

    assert len(bomb) < 4096
    with pytest.raises(UpstreamBadResponse, match="larger than"):
        await upstream(handler, max_bytes=4096).page(Widget("store", "w-1").path, "light")


async def test_redirects_to_other_hosts_are_not_followed() -> None:
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(str(request.url))
        return httpx2.Response(302, headers={"location": "https://elsewhere.example/steal"})

    with pytest.raises(UpstreamBadStatus, match=r"another host \(elsewhere.example\)"):
        await upstream(handler).page(Widget("store", "w-1").path, "light")
    assert seen == ["https://widgets.example.com/store/w-1?color=light"]


async def test_same_origin_redirects_are_followed_and_become_the_base() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/store/w-1":
            return httpx2.Response(301, headers={"location": "/v2/store/w-1?color=light"})
        return httpx2.Response(200, text=PAGE)

    fetched = await upstream(handler).page(Widget("store", "w-1").path, "light")

    assert fetched.page is not None
    assert b'<base href="https://widgets.example.com/v2/store/w-1?color=light">' in (
        fetched.page.head
    )


async def test_endless_redirects_stop() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(302, headers={"location": "/again"})

    with pytest.raises(UpstreamBadStatus, match="redirected more than 3 times"):
        await upstream(handler).page(Widget("store", "w-1").path, "light")


async def test_the_key_is_not_in_the_rejection() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(401, text=f"bad key {request.headers['returningai-api-key']}")

    with pytest.raises(UpstreamRejectedKey) as caught:
        await upstream(handler).signin("ann@example.com")

    assert VALID["WIDGET_API_KEY"] not in str(caught.value)
    assert "bad key" not in str(caught.value)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", "120"),
        (" 5 ", "5"),
        ("soon", None),
        ("-1", None),
        ("1" * 12, None),
        (30, "30"),  # an HTTP-date 30 s ahead
        (-30, "0"),  # an HTTP-date already past
    ],
)
async def test_retry_after_is_passed_on_only_when_it_is_valid(
    header: str | int, expected: str | None
) -> None:
    if isinstance(header, int):
        header = email.utils.formatdate(time.time() + header, usegmt=True)

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(429, headers={"retry-after": header})

    with pytest.raises(UpstreamBusy) as caught:
        await upstream(handler, retries=0).signin("ann@example.com")

    if expected is None:
        assert caught.value.retry_after is None
    else:
        assert caught.value.retry_after is not None
        assert abs(int(caught.value.retry_after) - int(expected)) <= 2  # the clock moves


async def test_revalidation_sends_validators_and_understands_304() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(304, headers={"etag": '"v1"'})

    fetched = await upstream(handler).page(
        Widget("store", "w-1").path,
        "light",
        etag='"v1"',
        last_modified="Sat, 21 Nov 2026 10:00:00 GMT",
    )

    assert fetched.page is None
    assert fetched.etag == '"v1"'
    assert seen[0].headers["if-none-match"] == '"v1"'
    assert seen[0].headers["if-modified-since"] == "Sat, 21 Nov 2026 10:00:00 GMT"


async def test_a_304_to_an_unconditional_request_is_an_error() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(304)

    with pytest.raises(UpstreamBadStatus, match="page answered 304"):
        await upstream(handler).page(Widget("store", "w-1").path, "light")
