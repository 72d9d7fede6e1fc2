"""Hissuno's steps in `widget-proxy check`: the key is proven by Hissuno itself, where the
widget chats, without starting a chat; what can't be proven is a warning, not a pass."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support import EMAIL, LeakScanner, free_port
from widget_proxy.check.checklist import Checklist, Steps
from widget_proxy.demo import demo_settings
from widget_proxy.providers.hissuno import PROVIDER, HissunoSettings, HissunoStandIn
from widget_proxy.servers import BackgroundServer
from widget_proxy.upstream.client import HttpClient, Retries

pytestmark = pytest.mark.anyio

SHOP = "https://shop.example"


@pytest.fixture
def hissuno(leak_scanner: LeakScanner) -> Iterator[tuple[HissunoStandIn, str]]:
    """A Hissuno project that, as in production, answers only its allowed origins."""
    vendor = PROVIDER.stand_in()
    vendor.allowed_origins = ("shop.example",)
    leak_scanner.add(vendor.secret_key)
    with BackgroundServer(vendor.app(), timeout_graceful_shutdown=1) as server:
        yield vendor, server.url


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    client = HttpClient(retries=Retries(retries=0, deadline=5))
    yield client
    await client.aclose()


async def check(
    settings: HissunoSettings, http: HttpClient, origin: str | None = None
) -> tuple[str, list[str]]:
    """The check's lines, and the steps that warned."""
    out = io.StringIO()
    lines = Checklist(out)
    steps = Steps(
        lines, http, connect_timeout=2, margin=60, max_ttl=3600, default_ttl=300, origin=origin
    )
    await PROVIDER.check(settings, steps, EMAIL)
    return out.getvalue(), lines.warned


def group(vendor: HissunoStandIn, url: str, **env: str) -> HissunoSettings:
    settings = demo_settings(vendor, url, **env).vendor
    assert isinstance(settings, HissunoSettings)
    return settings


async def test_the_widget_page_origin_lets_hissuno_judge_the_key(
    hissuno: tuple[HissunoStandIn, str], http: HttpClient
) -> None:
    vendor, url = hissuno

    out, warned = await check(group(vendor, url), http, origin=SHOP)

    assert warned == []
    assert "ok api: 200 in " in out
    assert vendor.calls["close"] == 1
    assert vendor.calls["chat"] == 0  # no conversation was started
    assert not vendor.sessions
    assert vendor.secret_key not in out


async def test_without_the_page_origin_the_key_is_unverified(
    hissuno: tuple[HissunoStandIn, str], http: HttpClient
) -> None:
    vendor, url = hissuno

    out, warned = await check(group(vendor, url), http)

    assert warned == ["api"]
    assert (
        "warn api: api answered 403: HISSUNO_SECRET_KEY is unverified (a vendor that judges"
        " the page's Origin refuses a call without one: run check with --origin"
    ) in out


async def test_an_unreachable_hissuno_leaves_the_key_unverified(
    hissuno: tuple[HissunoStandIn, str], http: HttpClient
) -> None:
    vendor, url = hissuno
    port = free_port()  # nothing listens there
    # The browser reaches Hissuno, not this server: a warning, and not a failure.
    api = f"http://127.0.0.1:{port}/api/integrations/widget/chat"

    out, warned = await check(group(vendor, url, HISSUNO_API_URL=api), http, origin=SHOP)

    assert warned == ["api"]
    assert (
        f"warn api: connection refused by 127.0.0.1:{port}: HISSUNO_SECRET_KEY is unverified"
    ) in out
