"""The demo in a real Chromium: log in, open the widget, see the vendor greet the user.

The greeting is rendered by the vendor's own script after its API accepted the
token, so it proves the token reached the browser intact and was valid upstream.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import jwt
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.middleware.sessions import SessionMiddleware

from tests.support import FaultyUpstream, LeakScanner, Proxy, Respond, wait_until
from widget_proxy import create_app
from widget_proxy.demo import StandIn, demo_app, demo_settings, stand_in
from widget_proxy.providers.hissuno import HissunoStandIn
from widget_proxy.providers.neuroon import NeuroonStandIn
from widget_proxy.providers.returningai import ReturningAIStandIn
from widget_proxy.servers import BackgroundServer

if TYPE_CHECKING:
    from playwright.sync_api import Page

EMAIL = "browser.user@example.com"

pytestmark = pytest.mark.browser


@pytest.fixture
def start_demo(leak_scanner: LeakScanner) -> Iterator[Callable[..., str]]:
    """Start the demo (merchant site + proxy) in front of a vendor stand-in."""
    servers: list[BackgroundServer] = []

    def start(vendor: StandIn, **env: str) -> str:
        upstream = BackgroundServer(vendor.app(), timeout_graceful_shutdown=1).__enter__()
        servers.append(upstream)
        settings = demo_settings(vendor, upstream.url, **env)
        leak_scanner.add(*settings.secrets)
        site = BackgroundServer(demo_app(settings, upstream.url), timeout_graceful_shutdown=1)
        servers.append(site.__enter__())
        return site.url

    yield start
    for server in reversed(servers):
        server.__exit__(None, None, None)


@pytest.fixture
def demo(start_demo: Callable[..., str], vendor: ReturningAIStandIn, upstream: str) -> str:
    return start_demo(vendor)


def test_login_then_widget_greets_the_user(
    page: Page, demo: str, vendor: ReturningAIStandIn
) -> None:
    page.goto(f"{demo}/widget?color=dark")
    assert page.url.startswith(f"{demo}/login?next=")

    page.fill("#email", EMAIL)
    page.click("button[type=submit]")

    page.wait_for_url(f"{demo}/widget?color=dark")
    greeting = page.locator("#greeting")
    greeting.wait_for(timeout=10_000)
    assert greeting.text_content() == f"Hello, {EMAIL}!"
    assert page.evaluate("document.body.className") == "dark"
    token = page.evaluate("window.__WIDGET_INIT__.token")
    assert isinstance(token, str)
    assert token.count(".") == 2
    assert vendor.calls["signin"] == 1
    assert vendor.calls["api"] == 1


def test_home_page_frames_the_widget(page: Page, demo: str) -> None:
    page.goto(f"{demo}/login")
    page.fill("#email", EMAIL)
    page.click("button[type=submit]")
    page.wait_for_url(f"{demo}/")

    greeting = page.frame_locator("iframe").locator("#greeting")

    assert greeting.text_content(timeout=10_000) == f"Hello, {EMAIL}!"


def test_a_hostile_token_stays_a_string(
    page: Page, make_proxy: Callable[..., Proxy], faulty: FaultyUpstream
) -> None:
    evil = "</script><script>window.__pwned=1</script>\"'"
    faulty.faults.active["signin"] = Respond(
        200, json.dumps({"token": evil}).encode(), (("content-type", "application/json"),)
    )
    proxy = make_proxy(WIDGET_BASE_URL=faulty.url)
    cookie = proxy.cookie({"email": EMAIL})["cookie"].split("=", 1)[1]
    page.context.add_cookies([{"name": "session", "value": cookie, "url": proxy.url}])

    page.goto(f"{proxy.url}/widget")

    assert page.evaluate("window.__WIDGET_INIT__.token") == evil
    assert page.evaluate("typeof window.__pwned") == "undefined"


def sign_in(page: Page, demo: str, path: str = "/widget") -> None:
    page.goto(f"{demo}{path}")
    page.fill("#email", EMAIL)
    page.click("button[type=submit]")
    page.wait_for_url(f"{demo}{path}")


def test_neuroon_end_to_end(page: Page, start_demo: Callable[..., str]) -> None:
    vendor = stand_in("neuroon")
    assert isinstance(vendor, NeuroonStandIn)
    demo = start_demo(vendor)

    sign_in(page, demo)

    status = page.locator("#neuroon-status")
    assert status.text_content(timeout=10_000) == (
        "Neuroon search ready for demo-shop: 3 results for \u201cshoes\u201d."
    )
    assert vendor.calls["search"] == 1


def test_neuroon_refuses_a_disallowed_origin(page: Page, start_demo: Callable[..., str]) -> None:
    vendor = stand_in("neuroon")
    assert isinstance(vendor, NeuroonStandIn)
    vendor.default_hosts, vendor.allowed_origins = (), ("https://shop.example",)
    demo = start_demo(vendor)

    sign_in(page, demo)

    status = page.locator("#neuroon-status")
    status.wait_for(timeout=10_000)
    assert status.text_content() == "Search unavailable: 403 Origin not allowed"


def test_neuroon_replaces_an_expired_token(page: Page, start_demo: Callable[..., str]) -> None:
    vendor = stand_in("neuroon")
    assert isinstance(vendor, NeuroonStandIn)
    vendor.token_lifetime = 2  # a short day, so the test need not wait 24 h
    demo = start_demo(vendor, NEUROON_ROTATE_AFTER="1")

    sign_in(page, demo)
    page.locator("[data-state=ready]").wait_for(timeout=10_000)
    first = page.get_attribute("script[data-token]", "data-token")
    assert first is not None
    # Until the first token is refused by the vendor (the proxy rotated it out before).
    wait_until(lambda: vendor.token_problem(first) == "Widget token expired", timeout=10)
    page.reload()
    page.locator("[data-state=ready]").wait_for(timeout=10_000)
    second = page.get_attribute("script[data-token]", "data-token")

    assert first is not None
    assert second is not None
    assert second != first
    assert vendor.token_problem(first) == "Widget token expired"
    assert vendor.token_problem(second) is None


def test_hissuno_end_to_end(page: Page, start_demo: Callable[..., str]) -> None:
    vendor = stand_in("hissuno")
    assert isinstance(vendor, HissunoStandIn)
    demo = start_demo(vendor)

    sign_in(page, demo)

    greeting = page.locator("#hissuno-greeting")
    assert greeting.text_content(timeout=10_000) == f"Hi, {EMAIL}! How can we help?"


def test_hissuno_refuses_a_disallowed_origin(page: Page, start_demo: Callable[..., str]) -> None:
    vendor = stand_in("hissuno")
    assert isinstance(vendor, HissunoStandIn)
    vendor.allowed_origins = ("*.shop.example",)
    demo = start_demo(vendor)

    sign_in(page, demo)

    greeting = page.locator("#hissuno-greeting")
    assert greeting.text_content(timeout=10_000) == (
        "Support chat unavailable: 403 Origin not allowed"
    )


def test_hissuno_replaces_an_expiring_token(page: Page, start_demo: Callable[..., str]) -> None:
    vendor = stand_in("hissuno")
    assert isinstance(vendor, HissunoStandIn)
    demo = start_demo(vendor, HISSUNO_TOKEN_TTL="3", TOKEN_REFRESH_MARGIN="1")

    sign_in(page, demo)
    page.locator("[data-state=ready]").wait_for(timeout=10_000)
    first = page.get_attribute("#hissuno-widget", "data-widget-token")
    assert first is not None
    exp = jwt.decode(first, vendor.secret_key, algorithms=["HS256"])["exp"]
    wait_until(lambda: time.time() > exp - 1, timeout=10)  # past exp minus the margin
    page.reload()
    page.locator("[data-state=ready]").wait_for(timeout=10_000)
    second = page.get_attribute("#hissuno-widget", "data-widget-token")

    assert first is not None
    assert second is not None
    assert second != first
    assert vendor.verify(second)[1] is None


def test_mounted_under_a_prefix_in_a_fastapi_app(
    page: Page, vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner
) -> None:
    settings = demo_settings(vendor, upstream)  # LOGIN_URL=/login: the merchant's own page
    leak_scanner.add(*settings.secrets)
    proxy = create_app(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A mounted app's lifespan is not run for it: the merchant runs the proxy's.
        async with proxy.router.lifespan_context(proxy):
            yield

    merchant = FastAPI(lifespan=lifespan)
    merchant.add_middleware(
        SessionMiddleware, secret_key=settings.session_secret.reveal(), https_only=False
    )

    @merchant.get("/login", response_class=HTMLResponse)
    async def login_form(next: str = "/") -> str:
        return (
            '<form method="post"><input id="email" name="email">'
            f'<input type="hidden" name="next" value="{next}"><button type="submit">Go</button>'
            "</form>"
        )

    @merchant.post("/login")
    async def login(request: Request) -> RedirectResponse:
        form = parse_qs((await request.body()).decode())
        request.session["email"] = form["email"][0]
        return RedirectResponse(form["next"][0], status_code=303)

    merchant.mount("/rewards", proxy)

    with BackgroundServer(merchant, timeout_graceful_shutdown=1) as server:
        page.goto(f"{server.url}/rewards/widget")
        assert page.url == f"{server.url}/login?next=%2Frewards%2Fwidget"
        page.fill("#email", EMAIL)
        page.click("button[type=submit]")
        page.wait_for_url(f"{server.url}/rewards/widget")

        greeting = page.locator("#greeting")
        assert greeting.text_content(timeout=10_000) == f"Hello, {EMAIL}!"
        # The page's <base> points at the vendor: the proxy's own URL must be absolute.
        token = page.evaluate(
            "fetch(location.origin + '/rewards/widget/token', {method: 'POST'}).then(r => r.status)"
        )
        assert token == 200
