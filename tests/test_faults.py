"""The fault-injection suite: every upstream fault ends in the right answer, in time.

One table of faults, one test body. Each case asserts the status the browser gets,
that it came within the deadline, that the error page holds no upstream body and no
key, that one log line names the fault, and that once the upstream heals the next
request succeeds without restarting anything.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import brotli
import httpx2
import pytest

from widget_proxy.demo import DemoUpstream
from tests import load
from tests.conftest import FaultyUpstream, Proxy
from tests.processes import serve
from tests.support import (
    CloseMidBody,
    Drip,
    Fault,
    Hang,
    LeakScanner,
    Refuse,
    Respond,
)
from tests.test_routes import EMAIL, token_in

DEADLINE = 2.0
TIMING = {
    "UPSTREAM_DEADLINE": str(DEADLINE),
    "UPSTREAM_CONNECT_TIMEOUT": "0.5",
    "UPSTREAM_READ_TIMEOUT": "0.5",
    "BREAKER_FAILURES": "1000",  # the breaker has its own tests below
}
LEAK = b"UPSTREAM-BODY-must-not-leak"
PAGE = (
    "<!doctype html><html><head><title>Caf\u00e9</title></head><body>"
    '<script>window.__WIDGET_INIT__ = { token: "", widgetType: "store" };</script>'
    "<p>Caf\u00e9 cr\u00e8me</p></body></html>"
)
HTML_UTF8 = (("content-type", "text/html; charset=utf-8"),)


def json_signin(body: bytes) -> Respond:
    return Respond(200, body, (("content-type", "application/json"),))


def page(body: bytes, *headers: tuple[str, str]) -> Respond:
    return Respond(200, body, headers or HTML_UTF8)


# kind, fault, status the browser gets, what the one log line says (None: it works).
FAULTS = [
    pytest.param("signin", Refuse(), 502, "connection failed (ConnectError) (after 3 attempts)",
                 id="refused"),
    pytest.param("signin", Hang(), 504, "timed out", id="signin-never-answers"),
    pytest.param("page", Hang(), 504, "timed out", id="page-never-answers"),
    pytest.param("page", Drip(interval=0.2), 504, "missed the 2 s deadline", id="page-drips"),
    pytest.param("signin", Respond(500, LEAK), 502, "signin answered 500", id="signin-500"),
    pytest.param("signin", Respond(502, LEAK), 502, "signin answered 502 (after 3 attempts)",
                 id="signin-502"),
    pytest.param("page", Respond(503, LEAK), 503, "page answered 503 (after 3 attempts)",
                 id="page-503"),
    pytest.param("page", Respond(504, LEAK), 502, "page answered 504 (after 3 attempts)",
                 id="page-504"),
    pytest.param("signin", Respond(429, LEAK, (("retry-after", "120"),)), 503,
                 "signin answered 429", id="signin-429-retry-after"),
    pytest.param("page", Respond(503, LEAK, (("retry-after", "90"),)), 503,
                 "page answered 503", id="page-503-retry-after"),
    pytest.param("page", CloseMidBody(), 502, "connection failed", id="page-closed-mid-body"),
    pytest.param("signin", json_signin(b"<html>" + LEAK), 502, "not JSON", id="signin-not-json"),
    pytest.param("signin", json_signin(b'{"jwt": "x"}'), 502, "no token", id="no-token"),
    pytest.param("signin", json_signin(b'{"token": 42}'), 502, "not a string", id="int-token"),
    pytest.param("signin", json_signin(b'{"token": ""}'), 502, "token is empty",
                 id="empty-token"),
    pytest.param("signin", Respond(401, LEAK), 502, "rejected the API key (401)", id="key-401"),
    pytest.param("signin", Respond(403, LEAK), 502, "rejected the API key (403)", id="key-403"),
    pytest.param("page", page(b"<html><script>var x;</script>" + LEAK), 502,
                 "placeholder missing", id="no-placeholder"),
    pytest.param("page", page(PAGE.replace("</body>", PAGE).encode()), 502,
                 "2 token placeholders", id="two-placeholders"),
    pytest.param("page", page(PAGE.encode() + b" " * (10 * 1024 * 1024)), 502,
                 "larger than 2097152 bytes", id="10-mib"),
    pytest.param("page", page(gzip.compress(PAGE.encode()), *HTML_UTF8,
                              ("content-encoding", "gzip")), 200, None, id="gzip"),
    pytest.param("page", page(zlib.compress(PAGE.encode()), *HTML_UTF8,
                              ("content-encoding", "deflate")), 200, None, id="deflate"),
    pytest.param("page", page(brotli.compress(PAGE.encode()), *HTML_UTF8,
                              ("content-encoding", "br")), 200, None, id="brotli"),
    pytest.param("page", page(PAGE.encode("latin-1"),
                              ("content-type", "text/html; charset=ISO-8859-1")),
                 200, None, id="latin-1"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "fault", "status", "logged"), FAULTS)
def test_fault(
    make_proxy: Callable[..., Proxy],
    faulty: FaultyUpstream,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    fault: Fault,
    status: int,
    logged: str | None,
) -> None:
    proxy = make_proxy(WIDGET_BASE_URL=faulty.url, **TIMING)
    if isinstance(fault, Refuse):
        faulty.stop()
    else:
        faulty.faults.active[kind] = fault

    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="widget_proxy"):
        response = proxy.get("/widget", EMAIL)
    elapsed = time.monotonic() - started

    assert response.status_code == status
    assert elapsed < DEADLINE + 0.75
    assert LEAK.decode() not in response.text
    assert all(LEAK.decode() not in r.getMessage() for r in caplog.records)
    request_lines = [r.getMessage() for r in caplog.records if r.name == "widget_proxy"]
    if logged is None:
        assert "Caf\u00e9 cr\u00e8me" in response.text  # decoded, served as UTF-8
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert int(response.headers["content-length"]) == len(response.content)
        assert token_in(response.text)
        assert len(request_lines) == 1  # the request's own line, without an error
        assert " 200 " in request_lines[0]
        assert "error=" not in request_lines[0]
    else:
        assert len(request_lines) == 1
        assert logged in request_lines[0]
        assert response.headers["x-request-id"] in request_lines[0]
        assert response.headers["cache-control"] == "no-store"
        if status == 503:
            retry_after = (
                dict(fault.headers).get("retry-after") if isinstance(fault, Respond) else None
            )
            assert response.headers.get("retry-after") == retry_after

    # The upstream heals: the next request works, nothing restarted.
    if isinstance(fault, Refuse):
        faulty.start()
    faulty.faults.reset()
    healed = proxy.get("/widget", EMAIL)
    assert healed.status_code == 200
    assert token_in(healed.text)


def test_a_burst_during_an_outage_ends_within_the_deadline_and_leaks_nothing(
    tmp_path: Path, faulty: FaultyUpstream, vendor: DemoUpstream, leak_scanner: LeakScanner
) -> None:
    # The proxy runs as its own process, as in production, so the 500 requests of
    # this test's client don't share its interpreter.
    env = {**TIMING, "BREAKER_FAILURES": "5", "BREAKER_COOLDOWN": "1"}
    with serve(tmp_path, vendor, faulty.url, leak_scanner, **env) as proxy:
        faulty.faults.active["signin"] = Hang()
        faulty.faults.active["page"] = Hang()
        cookies = [proxy.cookie(f"user{i}@example.com") for i in range(500)]

        started = time.monotonic()
        results = asyncio.run(load.burst(f"{proxy.url}/widget", cookies))
        elapsed = time.monotonic() - started

        assert {r.status for r in results} <= {503, 504}
        assert elapsed < DEADLINE + 1.0
        faulty.faults.reset()
        time.sleep(1.1)  # the breaker's cooldown; then one probe closes it
        assert httpx2.get(f"{proxy.url}/widget", headers=cookies[0]).status_code == 200
        # The connection pool is usable right after: a second burst goes through.
        again = asyncio.run(load.burst(f"{proxy.url}/widget", cookies[:100]))
        assert [r.status for r in again] == [200] * 100


def test_an_open_circuit_answers_at_once_but_cached_pages_still_work(
    make_proxy: Callable[..., Proxy], faulty: FaultyUpstream, vendor: DemoUpstream
) -> None:
    proxy = make_proxy(
        WIDGET_BASE_URL=faulty.url,
        **{**TIMING, "BREAKER_FAILURES": "3", "BREAKER_COOLDOWN": "30", "UPSTREAM_RETRIES": "0"},
    )
    assert proxy.get("/widget", "cached@example.com").status_code == 200
    faulty.faults.active["signin"] = Respond(502, LEAK)
    for i in range(3):
        assert proxy.get("/widget", f"new{i}@example.com").status_code == 502
    calls = vendor.calls["signin"]

    started = time.monotonic()
    refused = proxy.get("/widget", "another@example.com", headers={"accept": "application/json"})

    assert time.monotonic() - started < 0.5
    assert refused.status_code == 503
    assert refused.json()["error"] == "upstream_circuit_open"
    assert 1 <= int(refused.headers["retry-after"]) <= 30
    assert vendor.calls["signin"] == calls  # nothing was sent
    assert proxy.get("/widget", "cached@example.com").status_code == 200  # from the cache
