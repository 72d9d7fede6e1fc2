"""The one place for test helpers (no test module imports another).

Here: session cookies, the settings every test starts from, an injectable clock, a
FIFO nobody writes, the leak scanner, a fault-injecting wrapper for the stand-in
vendor, and the proxy under test with its scanning client. Beside it:
`support.processes` (the proxy as a real process), `support.redis` (a real Redis,
found or started), `support.vendors` (the other vendors' keys and environments),
`support.metrics` (Prometheus text read back), `support.browser` (Chromium),
`support.settings_docs` (the settings' docs, written), `support.docs` (the README's and
the docs site's pages and marked code blocks), `support.nginx` (a real nginx),
`support.deploy` (the Dockerfile and deploy/ as the tests read them),
`support.containers` (podman, and a base image made without a registry) and
`support.otlp` (an OTLP/HTTP receiver, and a proxy traced into it).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Generic, TypeVar

import anyio
import httpx2
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bench.processes import free_port
from bench.users import session_cookie
from widget_proxy.providers import StandIn
from widget_proxy.servers import BackgroundServer
from widget_proxy.settings import Settings

EMAIL: Final = "ann@example.com"


def fresh_secret(prefix: str = "") -> str:
    """A secret made for this run. A fixed one would be published with the tests, and
    the proxy refuses published secrets and placeholders (`options.published`)."""
    return prefix + secrets.token_urlsafe(32)


# A valid Returning.AI configuration, for tests that build settings by hand.
VALID: Final = {
    "WIDGET_BASE_URL": "https://widgets.example.com/",
    "WIDGET_API_KEY": fresh_secret("wp-key-"),
    "WIDGET_COMMUNITY_ID": "community-1",
    "WIDGET_ID": "w-1",
    "SESSION_SECRET": fresh_secret(),
}
# Most tests send far more than a user's minute allows; the rate-limit tests lower these.
UNLIMITED: Final = {"RATE_LIMIT_PER_MINUTE": "1000000", "RATE_LIMIT_IP_PER_MINUTE": "1000000"}
_TOKEN_LITERAL = re.compile(r'window\.__WIDGET_INIT__ = \{ token: ("[^"]*")')


def under_ci() -> bool:
    """CI is any non-empty `CI` (CI=true, CI=1, …): there, a missing dependency fails."""
    return bool(os.environ.get("CI"))


def unavailable(reason: str) -> None:
    """Skip for want of `reason`, except under CI, where it is a failure."""
    if under_ci():
        pytest.fail(f"{reason}; under CI a missing dependency is a failure")
    pytest.skip(reason)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@contextmanager
def fifo(path: Path) -> Iterator[Path]:
    """A FIFO at `path` that nobody writes: a reader that opens it waits for a writer.
    On leaving, a writer opens and closes it once, so that a reader still waiting
    (code that doesn't refuse a FIFO) gets its end and nothing hangs past the test."""
    os.mkfifo(path)
    try:
        yield path
    finally:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            pass  # no reader waiting (ENXIO)
        else:
            os.close(fd)


def token_in(html: str) -> str:
    """The token the proxy wrote into a Returning.AI page."""
    match = _TOKEN_LITERAL.search(html)
    assert match, "no token in the served page"
    token = json.loads(match.group(1))
    assert isinstance(token, str)
    return token


# --- faults ---------------------------------------------------------------------


@dataclass(frozen=True)
class Respond:
    """Answer with this status, body and headers instead of the real upstream."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Hang:
    """Accept the request and never answer (until the test ends)."""


@dataclass(frozen=True)
class Drip:
    """Answer 200, then send the body a few bytes at a time, slower than any deadline."""

    interval: float
    chunks: int = 1000


@dataclass(frozen=True)
class CloseMidBody:
    """Promise a long body, send a little of it, then drop the connection."""


@dataclass(frozen=True)
class Refuse:
    """Refuse connections: the whole server is down (handled by the test's server)."""


Fault = Respond | Hang | Drip | CloseMidBody | Refuse


@dataclass
class Faults:
    """Per-kind faults ('signin', 'page') for the upstream in front of which it sits."""

    active: dict[str, Fault] = field(default_factory=dict)
    released: threading.Event = field(default_factory=threading.Event)
    # Every request the upstream received, by kind, faulted or not: how often it was tried.
    hits: Counter[str] = field(default_factory=Counter)
    # The `traceparent` each request carried, by kind, in order (None: it carried none).
    traceparents: list[tuple[str, str | None]] = field(default_factory=list)

    def reset(self) -> None:
        self.active.clear()
        self.released.set()
        self.released = threading.Event()


def kind_of(scope: Scope) -> str:
    """'signin' (the call that issues a token: Returning.AI's signin, Neuroon's
    widget-token), 'page', or 'other'."""
    path: str = scope["path"]
    if scope["method"] == "POST" and path.endswith(("/signin", "/widget-token")):
        return "signin"
    if path.startswith(("/api/", "/static/")):
        return "other"
    return "page"


def with_faults(app: ASGIApp, faults: Faults) -> ASGIApp:
    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            faults.hits[kind_of(scope)] += 1
            parent = dict(scope["headers"]).get(b"traceparent")
            faults.traceparents.append((kind_of(scope), parent and parent.decode("latin-1")))
        fault = faults.active.get(kind_of(scope)) if scope["type"] == "http" else None
        if fault is None:
            await app(scope, receive, send)
        elif isinstance(fault, Hang):
            await anyio.to_thread.run_sync(faults.released.wait, 30)
        elif isinstance(fault, Drip):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for _ in range(fault.chunks):
                await send({"type": "http.response.body", "body": b"<", "more_body": True})
                await anyio.sleep(fault.interval)
            await send({"type": "http.response.body", "body": b""})
        elif isinstance(fault, CloseMidBody):
            headers = [(b"content-length", b"100000"), (b"content-type", b"text/html")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"<html>", "more_body": True})
            raise ConnectionAbortedError("the test upstream drops the connection mid-body")
        elif isinstance(fault, Refuse):
            raise AssertionError("Refuse is played by stopping the server, not by the app")
        else:
            headers = [(k.lower().encode(), v.encode()) for k, v in fault.headers]
            start: Message = {"type": "http.response.start", "status": fault.status}
            start["headers"] = [*headers, (b"content-length", str(len(fault.body)).encode())]
            await send(start)
            await send({"type": "http.response.body", "body": fault.body})

    return wrapper


# --- leaks ----------------------------------------------------------------------


class LeakScanner(logging.Handler):
    """Remembers every secret of the run and fails on any text that contains one."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.secrets: set[str] = set()
        self.records: list[str] = []
        self.formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        self._lock_records = threading.Lock()

    def add(self, *values: str) -> None:
        self.secrets.update(v for v in values if v)

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)  # includes the formatted exception trace, if any
        with self._lock_records:
            self.records.append(text)

    def find(self, text: str) -> list[str]:
        return [s for s in self.secrets if s in text]

    def check(self, where: str, text: str) -> None:
        __tracebackhide__ = True  # the report must not print the text, or the secret in it
        if self.find(text):
            raise AssertionError(f"a secret leaked into {where}")

    def check_logs_since(self, index: int) -> None:
        with self._lock_records:
            new = self.records[index:]
        for text in new:
            self.check("a log record", text)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.02)


# --- the proxy under test -------------------------------------------------------


V = TypeVar("V", bound=StandIn)


class FaultyUpstream(Generic[V]):
    """A vendor's stand-in behind a fault switch, on a port that survives restarts."""

    def __init__(self, vendor: V) -> None:
        self.vendor = vendor
        self.faults = Faults()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: BackgroundServer | None = None

    def start(self) -> None:
        app = with_faults(self.vendor.app(), self.faults)
        self._server = BackgroundServer(app, port=self.port, timeout_graceful_shutdown=1)
        self._server.__enter__()

    def seen(self) -> tuple[int, int]:
        """(signins, page fetches) that reached this upstream, whoever answered them."""
        return self.faults.hits["signin"], self.faults.hits["page"]

    def stop(self) -> None:
        if self._server is not None:
            self.faults.reset()  # let hung handlers go, so shutdown is quick
            self._server.__exit__(None, None, None)
            self._server = None


class Proxy:
    """A proxy under test: its settings, its URL and a scanning client."""

    def __init__(self, settings: Settings, url: str, scanner: LeakScanner) -> None:
        self.settings = settings
        self.url = url
        self.scanner = scanner
        scanner.add(*settings.secrets)  # whatever configuration it runs, its secrets are scanned
        self.client = scanning_client(scanner, base_url=url, timeout=30, follow_redirects=False)

    def cookie(self, data: dict[str, Any] | None = None, **kw: Any) -> dict[str, str]:
        value = session_cookie(self.settings.session_secret.reveal(), data or {}, **kw)
        return {"cookie": f"{self.settings.session_cookie}={value}"}

    def get(self, path: str, email: str | None = None, **kw: Any) -> httpx2.Response:
        headers = dict(kw.pop("headers", {}))
        if email is not None:
            headers.update(self.cookie({"email": email}))
        return self.client.get(path, headers=headers, **kw)


def scan_response(scanner: LeakScanner, response: httpx2.Response) -> None:
    """Fail if a secret of the run is in the response's headers or body (read already)."""
    where = f"a response to {response.request.url.path}"
    scanner.check(where, "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items()))
    scanner.check(where, response.text)


def scanning_client(scanner: LeakScanner, **kw: Any) -> httpx2.Client:
    """An httpx2 client whose every response is scanned for the run's secrets."""

    def scan(response: httpx2.Response) -> None:
        response.read()
        scan_response(scanner, response)

    return httpx2.Client(event_hooks={"response": [scan]}, **kw)


def async_scanning_client(scanner: LeakScanner, **kw: Any) -> httpx2.AsyncClient:
    """The same, for asyncio tests."""

    async def scan(response: httpx2.Response) -> None:
        await response.aread()
        scan_response(scanner, response)

    return httpx2.AsyncClient(event_hooks={"response": [scan]}, **kw)
