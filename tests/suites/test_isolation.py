"""The vendor's page runs on the origin that serves it: what that allows, and the two
defences docs/security.md gives (a CSP sandbox, or the proxy on an origin of its own).

A hostile vendor script tries what the review's did: read the shop's home page (its
CSRF token and the signed-in email) with a same-origin fetch, and read the cookies.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from starlette.applications import Starlette

from tests.support import Faults, LeakScanner, Respond, with_faults
from widget_proxy import create_app
from widget_proxy.demo import demo_app, demo_settings
from widget_proxy.demo.site import site_routes
from widget_proxy.providers.returningai import ReturningAIStandIn
from widget_proxy.servers import BackgroundServer

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EMAIL = "shopper@example.com"
# A widget page with the token placeholder and a script that goes after the shop.
HOSTILE_PAGE = """<!doctype html><html><head><title>widget</title></head><body>
<script>window.__WIDGET_INIT__ = { token: "" };</script>
<script>
  window.__done = (async () => {
    const found = {};
    try {
      const reply = await fetch(window.SHOP + "/", {credentials: "include"});
      found.read = await reply.text();
    } catch (e) { found.fetch = String(e); }
    try { found.cookie = document.cookie; } catch (e) { found.cookieError = e.name; }
    return found;
  })();
</script></body></html>"""


class HostileVendor:
    """The Returning.AI stand-in, except that its widget page is `HOSTILE_PAGE`."""

    def __init__(self, vendor: ReturningAIStandIn) -> None:
        self.vendor = vendor
        self.faults = Faults()
        body = HOSTILE_PAGE.encode()
        self.faults.active["page"] = Respond(200, body, (("content-type", "text/html"),))

    def app(self) -> Starlette:
        return with_faults(self.vendor.app(), self.faults)  # type: ignore[return-value]

    def proxy_env(self, url: str) -> dict[str, str]:
        return self.vendor.proxy_env(url)

    def token_problem(self, token: str) -> str | None:
        return self.vendor.token_problem(token)


@pytest.fixture
def servers() -> Iterator[list[BackgroundServer]]:
    started: list[BackgroundServer] = []
    yield started
    for server in reversed(started):
        server.__exit__(None, None, None)


def serve(servers: list[BackgroundServer], app: Starlette) -> str:
    server = BackgroundServer(app, timeout_graceful_shutdown=1).__enter__()
    servers.append(server)
    return server.url


def log_in(page: Page, shop: str) -> None:
    page.goto(f"{shop}/login")
    page.fill("#email", EMAIL)
    page.click("button[type=submit]")
    page.wait_for_url(f"{shop}/")


def what_the_script_found(page: Page, widget_url: str, shop: str) -> dict[str, str]:
    page.add_init_script(f"window.SHOP = {json.dumps(shop)};")
    page.goto(widget_url)
    found: dict[str, str] = page.evaluate("window.__done")
    return found


@pytest.mark.parametrize("sandbox", [False, True], ids=["same-origin", "sandboxed"])
def test_a_hostile_vendor_script_reads_the_shop_unless_sandboxed(
    page: Page,
    servers: list[BackgroundServer],
    vendor: ReturningAIStandIn,
    leak_scanner: LeakScanner,
    sandbox: bool,
) -> None:
    hostile = HostileVendor(vendor)
    upstream = serve(servers, hostile.app())
    settings = demo_settings(hostile, upstream, WIDGET_SANDBOX=str(sandbox).lower())
    leak_scanner.add(*settings.secrets)
    shop = serve(servers, demo_app(settings, upstream))  # the proxy mounted in the shop
    log_in(page, shop)

    found = what_the_script_found(page, f"{shop}/widget", shop)

    if sandbox:
        assert "read" not in found  # the fetch was a cross-origin one, and refused
        assert "Failed to fetch" in found["fetch"]
        assert found.get("cookieError") == "SecurityError"
    else:  # the trust model: on the shop's origin, the vendor's script is the shop
        assert EMAIL in found["read"]
        assert 'name="csrf"' in found["read"]


def test_the_widget_still_works_in_the_sandbox(
    page: Page,
    servers: list[BackgroundServer],
    vendor: ReturningAIStandIn,
    upstream: str,
    leak_scanner: LeakScanner,
) -> None:
    settings = demo_settings(vendor, upstream, WIDGET_SANDBOX="true")
    leak_scanner.add(*settings.secrets)
    shop = serve(servers, demo_app(settings, upstream))
    # Straight to the widget after signing in: the home page would frame it too.
    page.goto(f"{shop}/login?next=%2Fwidget")
    page.fill("#email", EMAIL)
    with page.expect_navigation(url=f"{shop}/widget") as navigation:
        page.click("button[type=submit]")
    response = navigation.value

    assert response is not None
    assert (
        "sandbox allow-scripts allow-forms allow-popups"
        in (response.headers["content-security-policy"])
    )
    assert page.locator("#greeting").text_content(timeout=10_000) == f"Hello, {EMAIL}!"
    assert vendor.calls["api"] == 1  # its script called the vendor's API, token and all


def test_on_an_origin_of_its_own_the_widget_cannot_read_the_shop(
    page: Page,
    servers: list[BackgroundServer],
    vendor: ReturningAIStandIn,
    leak_scanner: LeakScanner,
) -> None:
    hostile = HostileVendor(vendor)
    upstream = serve(servers, hostile.app())
    settings = demo_settings(hostile, upstream)
    leak_scanner.add(*settings.secrets)
    # The shop and the proxy are separate servers: two origins (the ports differ), one
    # site, so the shop's session cookie reaches the proxy as it would on a subdomain.
    shop = serve(servers, Starlette(routes=site_routes(settings, upstream)))
    widgets = serve(servers, create_app(settings))
    assert shop.rsplit(":", 1)[1] != widgets.rsplit(":", 1)[1]
    log_in(page, shop)

    found = what_the_script_found(page, f"{widgets}/widget", shop)

    assert "read" not in found  # cross-origin: the shop sends no CORS headers
    assert "Failed to fetch" in found["fetch"]
    assert EMAIL not in json.dumps(found)
