"""Fixtures that start real servers on loopback, and the suite-wide leak scan.

Every response a test client receives and every log record of the run is scanned
for the API key and the session secret.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest

from widget_proxy import create_app
from widget_proxy.demo import DemoUpstream, demo_settings
from widget_proxy.servers import BackgroundServer
from widget_proxy.settings import Settings
from tests.processes import free_port
from tests.support import Faults, LeakScanner, session_cookie, with_faults

_scanner = LeakScanner()
# Most tests send far more than a user's minute allows; the rate-limit tests lower these.
UNLIMITED = {"RATE_LIMIT_PER_MINUTE": "1000000", "RATE_LIMIT_IP_PER_MINUTE": "1000000"}


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


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
def vendor(leak_scanner: LeakScanner) -> DemoUpstream:
    vendor = DemoUpstream(
        api_key="wp-test-key-" + secrets.token_hex(16),
        community_id="test-community",
        signing_key=secrets.token_urlsafe(32),
    )
    leak_scanner.add(vendor.api_key)
    return vendor


@pytest.fixture(scope="session")
def _upstream_server(vendor: DemoUpstream) -> Iterator[BackgroundServer]:
    with BackgroundServer(vendor.app(), timeout_graceful_shutdown=1) as server:
        yield server


@pytest.fixture
def upstream(_upstream_server: BackgroundServer, vendor: DemoUpstream) -> Iterator[str]:
    """The stand-in vendor's URL, with its call counts and behaviour reset for this test."""
    vendor.calls.clear()
    yield _upstream_server.url
    vendor.token_ttl, vendor.signin_delay, vendor.page_delay = 300, 0.0, 0.0


@pytest.fixture
def make_settings(
    vendor: DemoUpstream, upstream: str, leak_scanner: LeakScanner
) -> Callable[..., Settings]:
    def make(**overrides: str) -> Settings:
        settings = demo_settings(vendor, upstream, **{**UNLIMITED, "LOGIN_URL": "", **overrides})
        leak_scanner.add(*settings.secrets)
        return settings

    return make


class FaultyUpstream:
    """The vendor stand-in behind a fault switch, on a port that survives restarts."""

    def __init__(self, vendor: DemoUpstream) -> None:
        self.vendor = vendor
        self.faults = Faults()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: BackgroundServer | None = None

    def start(self) -> None:
        app = with_faults(self.vendor.app(), self.faults)
        self._server = BackgroundServer(app, port=self.port, timeout_graceful_shutdown=1)
        self._server.__enter__()

    def stop(self) -> None:
        if self._server is not None:
            self.faults.reset()  # let hung handlers go, so shutdown is quick
            self._server.__exit__(None, None, None)
            self._server = None


@pytest.fixture
def faulty(vendor: DemoUpstream, upstream: str) -> Iterator[FaultyUpstream]:
    server = FaultyUpstream(vendor)
    server.start()
    yield server
    server.stop()


class Proxy:
    """A proxy under test: its settings, its URL and a scanning client."""

    def __init__(self, settings: Settings, url: str, scanner: LeakScanner) -> None:
        self.settings = settings
        self.url = url
        self._scanner = scanner
        self.client = httpx2.Client(
            base_url=url,
            timeout=30,
            follow_redirects=False,
            event_hooks={"response": [self._scan]},
        )

    def _scan(self, response: httpx2.Response) -> None:
        response.read()
        head = "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items())
        self._scanner.check(f"a response to {response.request.url.path}", head)
        self._scanner.check(f"a response to {response.request.url.path}", response.text)

    def cookie(self, data: dict[str, Any] | None = None, **kw: Any) -> dict[str, str]:
        value = session_cookie(self.settings.session_secret.reveal(), data or {}, **kw)
        return {"cookie": f"{self.settings.session_cookie}={value}"}

    def get(self, path: str, email: str | None = None, **kw: Any) -> httpx2.Response:
        headers = dict(kw.pop("headers", {}))
        if email is not None:
            headers.update(self.cookie({"email": email}))
        return self.client.get(path, headers=headers, **kw)


@pytest.fixture
def make_proxy(
    make_settings: Callable[..., Settings], leak_scanner: LeakScanner
) -> Iterator[Callable[..., Proxy]]:
    servers: list[tuple[BackgroundServer, Proxy]] = []

    def make(settings: Settings | None = None, **overrides: str) -> Proxy:
        settings = settings or make_settings(**overrides)
        server = BackgroundServer(create_app(settings), timeout_graceful_shutdown=1).__enter__()
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
