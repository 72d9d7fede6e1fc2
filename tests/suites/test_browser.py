"""The demo in a real Chromium: log in, open the widget, see the vendor greet the user.

The greeting is rendered by the vendor's own script after its API accepted the
token, so it proves the token reached the browser intact and was valid upstream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.middleware.sessions import SessionMiddleware

from tests.support import FaultyUpstream, LeakScanner, Proxy, Respond, wait_until
from widget_proxy import create_app
from widget_proxy.demo import demo_settings, stand_in
from widget_proxy.providers.hissuno import HissunoStandIn
from widget_proxy.providers.neuroon import NeuroonStandIn
from widget_proxy.providers.returningai import ReturningAIStandIn
from widget_proxy.servers import BackgroundServer

if TYPE_CHECKING:
    from playwright.sync_api import Page

EMAIL = "browser.user@example.com"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def demo(demo_site: Callable[..., str], vendor: ReturningAIStandIn, upstream: str) -> str:
    return demo_site(vendor)


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


def test_neuroon_end_to_end(page: Page, demo_site: Callable[..., str]) -> None:
    vendor = stand_in("neuroon")
    assert isinstance(vendor, NeuroonStandIn)
    demo = demo_site(vendor)

    page.goto(f"{demo}/widget")  # a shopper needn't sign in (ALLOW_ANONYMOUS)

    status = page.locator("#neuroon-status")
    assert status.text_content(timeout=10_000) == (
        "Neuroon search ready for demo-shop: 3 results for \u201cshoes\u201d."
    )
    assert vendor.calls["search"] == 1


def test_neuroon_refuses_a_disallowed_origin(page: Page, demo_site: Callable[..., str]) -> None:
    vendor = stand_in("neuroon")
    assert isinstance(vendor, NeuroonStandIn)
    vendor.default_hosts, vendor.allowed_origins = (), ("https://shop.example",)
    demo = demo_site(vendor)

    page.goto(f"{demo}/widget")  # a shopper needn't sign in (ALLOW_ANONYMOUS)

    status = page.locator("#neuroon-status")
    status.wait_for(timeout=10_000)
    assert status.text_content() == "Search unavailable: 403 Origin not allowed"


def test_neuroon_replaces_an_expired_token(page: Page, demo_site: Callable[..., str]) -> None:
    vendor = stand_in("neuroon")
    assert isinstance(vendor, NeuroonStandIn)
    vendor.token_lifetime = 2  # a short day, so the test need not wait 24 h
    demo = demo_site(vendor, NEUROON_ROTATE_AFTER="1")

    page.goto(f"{demo}/widget")  # a shopper needn't sign in (ALLOW_ANONYMOUS)
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


def hissuno(**fields: object) -> HissunoStandIn:
    vendor = stand_in("hissuno")
    assert isinstance(vendor, HissunoStandIn)
    for name, value in fields.items():
        setattr(vendor, name, value)
    return vendor


def hissuno_greeting(page: Page) -> str | None:
    """The widget's reply once it has one (or its error), after its first send."""
    page.locator("#hissuno-widget[data-state]").wait_for(timeout=10_000)
    return page.locator("#hissuno-greeting").text_content()


def test_hissuno_end_to_end(page: Page, demo_site: Callable[..., str]) -> None:
    vendor = hissuno()
    demo = demo_site(vendor)

    sign_in(page, demo)

    assert hissuno_greeting(page) == f"Hi, {EMAIL}! How can we help?"
    token = page.get_attribute("#hissuno-widget", "data-widget-token")
    assert vendor.tokens_seen == [token]  # in the JSON body, as the widget sends it
    assert vendor.token_problem(vendor.tokens_seen[0]) is None
    assert vendor.last_user_id == EMAIL
    assert page.get_attribute("#hissuno-widget", "data-sent") == "1"
    assert page.evaluate("window.hissunoProps.userId") == EMAIL
    assert vendor.calls["chat"] == vendor.calls["stream"] == 1
    wait_until(lambda: vendor.calls["settings"] == 1)  # fetched beside the chat


def test_hissuno_refuses_a_disallowed_origin(page: Page, demo_site: Callable[..., str]) -> None:
    vendor = hissuno(allowed_origins=("*.shop.example",))
    demo = demo_site(vendor)

    sign_in(page, demo)

    assert hissuno_greeting(page) == "Support chat unavailable: 403 Origin not allowed"
    assert page.get_attribute("#hissuno-widget", "data-state") == "error"
    assert vendor.last_user_id is None  # refused before any token was looked at
    assert vendor.calls["stream"] == 0


def test_hissuno_renews_the_token_without_a_reload(
    page: Page, demo_site: Callable[..., str]
) -> None:
    vendor = hissuno(leeway=0)  # so the first token is refused within the test
    demo = demo_site(vendor, HISSUNO_TOKEN_TTL="4", TOKEN_REFRESH_MARGIN="1")

    sign_in(page, demo)
    assert hissuno_greeting(page) == f"Hi, {EMAIL}! How can we help?"
    first = page.get_attribute("#hissuno-widget", "data-widget-token")
    assert first is not None
    wait_until(lambda: page.get_attribute("#hissuno-widget", "data-widget-token") != first)
    second = page.get_attribute("#hissuno-widget", "data-widget-token")
    assert second
    wait_until(lambda: vendor.token_problem(first) == "Token expired")

    shown = page.evaluate("hissunoSend('again')")

    assert shown == f"Hi, {EMAIL}! How can we help?"
    assert vendor.tokens_seen == [first, second]  # the renewed prop, on the next send
    assert vendor.token_problem(second) is None
    assert page.get_attribute("#hissuno-widget", "data-sent") == "2"
    assert page.evaluate("window.hissunoProps.widgetToken") == second


def test_hissuno_anonymous_visitor_without_a_token(
    page: Page, demo_site: Callable[..., str]
) -> None:
    vendor = hissuno(token_required=False)
    demo = demo_site(vendor, ALLOW_ANONYMOUS="true")

    page.goto(f"{demo}/widget")  # never signed in

    assert hissuno_greeting(page) == "Hi there! How can we help?"
    assert page.get_attribute("#hissuno-widget", "data-widget-token") == ""
    assert vendor.calls["chat"] == 1
    assert vendor.tokens_seen == []  # no widgetToken in the body at all
    assert vendor.last_user_id is None
    assert page.evaluate("'widgetToken' in window.hissunoProps") is False


def test_hissuno_anonymous_visitor_of_a_project_that_requires_tokens(
    page: Page, demo_site: Callable[..., str]
) -> None:
    vendor = hissuno()
    demo = demo_site(vendor, ALLOW_ANONYMOUS="true")

    page.goto(f"{demo}/widget")

    assert hissuno_greeting(page) == "Support chat unavailable: 401 Widget token is required"
    assert vendor.tokens_seen == []


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
