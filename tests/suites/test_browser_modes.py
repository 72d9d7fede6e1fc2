"""The vendors' current integration modes in a real Chromium, each against its stand-in:
Returning.AI's Access Key Embed renewing its embed token on an open page, and
Neuroon's search for a shopper who never signed in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import jwt
import pytest

from tests.support import wait_until
from widget_proxy.demo import stand_in
from widget_proxy.providers.neuroon import NeuroonStandIn
from widget_proxy.providers.returningai.sdk import ReturningAISdkStandIn

if TYPE_CHECKING:
    from playwright.sync_api import Page

EMAIL = "browser.user@example.com"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def sign_in(page: Page, site: str, path: str = "/widget") -> None:
    page.goto(f"{site}{path}")
    page.fill("#email", EMAIL)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site}{path}")


def embed_token(page: Page) -> str:
    token = page.get_attribute(".rai-holder > rai-store-widget", "embed-token")
    assert token is not None
    return token


def test_access_key_embed_end_to_end(page: Page, demo_site: Callable[..., str]) -> None:
    vendor = stand_in("returningai-sdk")
    assert isinstance(vendor, ReturningAISdkStandIn)
    site = demo_site(vendor)

    sign_in(page, site)

    greeting = page.locator("rai-store-widget .rai-greeting")  # drawn by the bundle
    assert greeting.text_content(timeout=10_000) == f"Hello, {EMAIL}!"
    assert vendor.seen == [{"data-email": EMAIL}]
    assert vendor.calls["validate"] == 1
    tag = page.locator("rai-store-widget")
    assert tag.get_attribute("community-id") == vendor.community_id
    assert tag.get_attribute("bundle-url", timeout=1000)
    assert tag.get_attribute("theme") == "light"


def test_an_open_page_renews_its_embed_token_before_it_expires(
    page: Page, demo_site: Callable[..., str]
) -> None:
    vendor = stand_in("returningai-sdk")
    assert isinstance(vendor, ReturningAISdkStandIn)
    vendor.token_ttl = 5  # tokens living a few seconds instead of 15 minutes
    site = demo_site(vendor, TOKEN_REFRESH_MARGIN="2")

    sign_in(page, site)
    page.locator("rai-store-widget[data-state=ready]").wait_for(timeout=10_000)
    first = embed_token(page)
    exp = jwt.decode(first, vendor.signing_key, algorithms=["HS256"])["exp"]

    # Past the first token's exp, without a reload: the page must hold a newer one.
    wait_until(lambda: time.time() > exp + 1, timeout=15)
    page.locator("rai-store-widget[data-state=ready]").wait_for(timeout=10_000)
    second = embed_token(page)

    assert second != first
    assert vendor.token_problem(first) == "Token expired"
    assert vendor.token_problem(second) is None
    assert page.locator("rai-store-widget .rai-greeting").text_content() == f"Hello, {EMAIL}!"
    assert page.locator("text=Session expired").count() == 0
    assert vendor.calls["validate"] >= 2  # the new tag was mounted, and validated


def test_without_renewal_the_widget_expires(page: Page, demo_site: Callable[..., str]) -> None:
    """What the renewal prevents: the stand-in SDK does show an expired session."""
    vendor = stand_in("returningai-sdk")
    assert isinstance(vendor, ReturningAISdkStandIn)
    vendor.token_ttl = 4
    site = demo_site(vendor, TOKEN_REFRESH_MARGIN="1")
    # The page's renewal is switched off before its scripts run.
    page.add_init_script(
        "Object.defineProperty(window, 'widgetProxy',"
        " {value: {renew: function () {}}, writable: false})"
    )

    sign_in(page, site)

    page.locator("rai-store-widget[data-state=expired]").wait_for(timeout=15_000)
    assert page.locator("rai-store-widget .rai-status").text_content() == "Session expired"


def test_an_anonymous_shopper_searches_with_neuroon(
    page: Page, demo_site: Callable[..., str]
) -> None:
    vendor = stand_in("neuroon")
    assert isinstance(vendor, NeuroonStandIn)
    site = demo_site(vendor)  # ALLOW_ANONYMOUS defaults to true for Neuroon

    page.goto(f"{site}/widget")  # never signed in

    assert page.url == f"{site}/widget"  # no detour to the login page
    status = page.locator("#neuroon-status")
    assert status.text_content(timeout=10_000) == (
        "Neuroon search ready for demo-shop: 3 results for \u201cshoes\u201d."
    )
    token = page.get_attribute("script[data-token]", "data-token")
    assert token is not None
    assert token.startswith("wt_")  # Neuroon's opaque token, untouched
    assert vendor.calls["token_issue"] == 1
    # The loader found the API through data-api-url (NEUROON_API_URL), not its default.
    assert vendor.calls["search"] == 1


def test_neuroon_sign_in_can_still_be_required(page: Page, demo_site: Callable[..., str]) -> None:
    vendor = stand_in("neuroon")
    site = demo_site(vendor, ALLOW_ANONYMOUS="false")

    page.goto(f"{site}/widget")

    assert page.url.startswith(f"{site}/login?next=")
