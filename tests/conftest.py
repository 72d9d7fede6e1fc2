"""Fixtures that start real servers on loopback, and the suite-wide leak scan.

Every response a test client receives and every log record of the run is scanned
for every secret of every configuration the run used.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings as hypothesis_settings

from tests.support import UNLIMITED, Clock, FaultyUpstream, LeakScanner, Proxy
from tests.support.browser import chromium
from tests.support.redis import private_redis
from widget_proxy import create_app
from widget_proxy.demo import StandIn, demo_app, demo_settings
from widget_proxy.providers.returningai import ReturningAIStandIn
from widget_proxy.servers import BackgroundServer
from widget_proxy.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer
    from playwright.sync_api import Browser, Page, Response

# A loaded 2-core machine can't promise hypothesis's 200 ms per example.
hypothesis_settings.register_profile("widget-proxy", deadline=None)
hypothesis_settings.load_profile("widget-proxy")

_scanner = LeakScanner()


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def proxy_logging() -> Iterator[None]:
    """The `widget_proxy` and HTTP library loggers as they were, after a test that
    configures them (`configure_logging`)."""
    proxy, library = logging.getLogger("widget_proxy"), logging.getLogger("httpx2")
    saved = (proxy.handlers[:], proxy.level, proxy.propagate, library.level)
    yield
    proxy.handlers[:], proxy.level, proxy.propagate, library.level = saved


@pytest.fixture(scope="session", autouse=True)
def leak_scanner() -> Iterator[LeakScanner]:
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.DEBUG)  # secrets must stay out of every level, DEBUG included
    root.addHandler(_scanner)
    yield _scanner
    root.removeHandler(_scanner)
    root.setLevel(previous)


@pytest.fixture(autouse=True)
def _no_leaks_in_logs(leak_scanner: LeakScanner) -> Iterator[None]:
    start = len(leak_scanner.records)
    yield
    leak_scanner.check_logs_since(start)


@pytest.fixture(scope="session")
def vendor(leak_scanner: LeakScanner) -> ReturningAIStandIn:
    vendor = ReturningAIStandIn(
        api_key="wp-test-key-" + secrets.token_hex(16),
        community_id="test-community",
        signing_key=secrets.token_urlsafe(32),
    )
    leak_scanner.add(vendor.api_key)
    return vendor


@pytest.fixture(scope="session")
def _upstream_server(vendor: ReturningAIStandIn) -> Iterator[BackgroundServer]:
    with BackgroundServer(vendor.app(), timeout_graceful_shutdown=1) as server:
        yield server


@pytest.fixture
def upstream(_upstream_server: BackgroundServer, vendor: ReturningAIStandIn) -> Iterator[str]:
    """The stand-in vendor's URL, with its call counts and behaviour reset for this test."""
    vendor.calls.clear()
    yield _upstream_server.url
    vendor.token_ttl, vendor.signin_delay, vendor.page_delay = 300, 0.0, 0.0


@pytest.fixture
def make_settings(
    vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner
) -> Callable[..., Settings]:
    def make(**overrides: str) -> Settings:
        settings = demo_settings(vendor, upstream, **{**UNLIMITED, "LOGIN_URL": "", **overrides})
        leak_scanner.add(*settings.secrets)
        return settings

    return make


@pytest.fixture
def shared_redis() -> Iterator[str]:
    """A Redis of this test's own for proxies to share. Proxies write under the fixed
    `widget-proxy:` prefix, so on a Redis other runs share too (6379), one run's
    clean-up would delete another's entries and locks."""
    with private_redis() as server:
        yield server.url


@pytest.fixture
def faulty(
    vendor: ReturningAIStandIn, upstream: str
) -> Iterator[FaultyUpstream[ReturningAIStandIn]]:
    server = FaultyUpstream(vendor)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_proxy(
    make_settings: Callable[..., Settings], leak_scanner: LeakScanner
) -> Iterator[Callable[..., Proxy]]:
    servers: list[tuple[BackgroundServer, Proxy]] = []

    def make(
        settings: Settings | None = None,
        clock: Clock | None = None,
        tracer: Tracer | None = None,
        **overrides: str,
    ) -> Proxy:
        settings = settings or make_settings(**overrides)
        app = create_app(settings, tracer=tracer, **({} if clock is None else {"clock": clock}))
        server = BackgroundServer(app, timeout_graceful_shutdown=1).__enter__()
        proxy = Proxy(settings, server.url, leak_scanner)
        servers.append((server, proxy))
        return proxy

    yield make
    for server, proxy in servers:
        proxy.client.close()
        server.__exit__(None, None, None)


@pytest.fixture
def proxy(make_proxy: Callable[..., Proxy]) -> Proxy:
    return make_proxy()


@pytest.fixture(scope="module")  # Playwright's sync API holds an event loop while open
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Browser, leak_scanner: LeakScanner) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    seen: list[str] = []
    leaks: list[str] = []

    def scan(response: Response) -> None:
        # Every byte the browser receives is scanned as it arrives (the body of a
        # page navigated away from can't be read later). Playwright swallows
        # exceptions raised here, so findings are collected and asserted below.
        seen.append(response.url)
        texts = [str(response.all_headers())]
        if not 300 <= response.status < 400:
            texts.append(response.text())
        leaks.extend(response.url for text in texts if leak_scanner.find(text))

    page.on("response", scan)
    yield page
    context.close()
    assert seen, "the browser received nothing"
    assert not leaks, f"a secret reached the browser in {leaks}"


@pytest.fixture
def demo_site(leak_scanner: LeakScanner) -> Iterator[Callable[..., str]]:
    """Start the demo (merchant site + proxy) in front of a vendor stand-in; its URL."""
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
