"""The demo shop of a config file (`demo --config`) in a real Chromium: one page frames
a Returning.AI store and a Hissuno chat, each from its own mount of one process, and
each vendor's own script greets the signed-in user (its token reached it intact and was
valid upstream)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support import LeakScanner
from tests.support.configs import toml
from widget_proxy.demo.widgets import demo_widgets, demo_widgets_app
from widget_proxy.servers import BackgroundServer

if TYPE_CHECKING:
    from playwright.sync_api import Page

EMAIL = "two.vendors@example.com"
FILE = {
    "rewards": {"mount": "/rewards", "TOKEN_PROVIDER": "returningai"},
    "support": {"mount": "/support", "TOKEN_PROVIDER": "hissuno"},
}

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def shop(tmp_path: Path, leak_scanner: LeakScanner) -> Iterator[str]:
    path = tmp_path / "widgets.toml"
    path.write_text(toml({}, FILE))
    with demo_widgets(path, {}) as config:
        leak_scanner.add(*config.secrets)
        with BackgroundServer(demo_widgets_app(config), timeout_graceful_shutdown=1) as site:
            yield site.url


def test_one_shop_page_shows_both_vendors(page: Page, shop: str) -> None:
    page.goto(f"{shop}/login")
    page.fill("#email", EMAIL)
    page.click("button[type=submit]")
    page.wait_for_url(f"{shop}/")

    store = page.frame_locator("#widget-rewards").locator("#greeting")
    assert store.text_content(timeout=10_000) == f"Hello, {EMAIL}!"
    chat = page.frame_locator("#widget-support")
    chat.locator("#hissuno-widget[data-state]").wait_for(timeout=10_000)
    assert chat.locator("#hissuno-greeting").text_content() == f"Hi, {EMAIL}! How can we help?"
