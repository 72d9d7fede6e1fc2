"""The fault-injection suite: every upstream fault ends in the right answer, in time.

One table of faults, one test body. Each case asserts the status the browser gets,
that it came within the deadline, that the error page holds no upstream body and no
key, that one log line names the fault, how many requests of each kind reached the
upstream (so a fault that must not be retried can't pass while it is), and that once
the upstream heals the next request succeeds without restarting anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import brotli
import pytest

from bench.http import burst
from tests.support import (
    EMAIL,
    UNLIMITED,
    Clock,
    CloseMidBody,
    Drip,
    Fault,
    FaultyUpstream,
    Hang,
    LeakScanner,
    Proxy,
    Refuse,
    Respond,
    scanning_client,
    token_in,
    wait_until,
)
from tests.support.metrics import samples, value
from tests.support.processes import serve
from tests.support.vendors import SHOP_KEY, neuroon_env
from widget_proxy.providers.neuroon import NeuroonStandIn
from widget_proxy.providers.returningai import ReturningAIStandIn
from widget_proxy.settings import Settings

DEADLINE = 2.0
TIMING = {
    "UPSTREAM_DEADLINE": str(DEADLINE),
    "UPSTREAM_CONNECT_TIMEOUT": "0.5",
    # Three attempts that each time out (3 x 0.4 s, plus at most 0.1 + 0.2 s of backoff)
    # fit in the deadline with half a second to spare, so a hang is always tried 3 times.
    "UPSTREAM_READ_TIMEOUT": "0.4",
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


# kind, fault, status the browser gets, what the one log line says (None: it works),
# and the (signin, page) requests that reached the upstream: 3 is 1 + UPSTREAM_RETRIES,
# and the other kind, fetched side by side with the faulty one, is asked once.
FAULTS = [
    pytest.param("signin", Refuse(), 502, "connection failed (ConnectError) (after 3 attempts)",
                 (0, 0), id="refused"),
    pytest.param("signin", Hang(), 504, "timed out", (3, 1), id="signin-never-answers"),
    pytest.param("page", Hang(), 504, "timed out", (1, 3), id="page-never-answers"),
    pytest.param("page", Drip(interval=0.2), 504, "missed the 2 s deadline", (1, 1),
                 id="page-drips"),
    pytest.param("signin", Respond(500, LEAK), 502, "signin answered 500", (1, 1),
                 id="signin-500"),
    pytest.param("signin", Respond(502, LEAK), 502, "signin answered 502 (after 3 attempts)",
                 (3, 1), id="signin-502"),
    pytest.param("page", Respond(503, LEAK), 503, "page answered 503 (after 3 attempts)",
                 (1, 3), id="page-503"),
    pytest.param("page", Respond(504, LEAK), 502, "page answered 504 (after 3 attempts)",
                 (1, 3), id="page-504"),
    pytest.param("signin", Respond(429, LEAK, (("retry-after", "120"),)), 503,
                 "signin answered 429", (1, 1), id="signin-429-retry-after"),
    pytest.param("page", Respond(503, LEAK, (("retry-after", "90"),)), 503,
                 "page answered 503", (1, 1), id="page-503-retry-after"),
    pytest.param("page", CloseMidBody(), 502, "connection failed", (1, 3),
                 id="page-closed-mid-body"),
    pytest.param("signin", json_signin(b"<html>" + LEAK), 502, "not JSON", (1, 1),
                 id="signin-not-json"),
    pytest.param("signin", json_signin(b'{"jwt": "x"}'), 502, "no token", (1, 1),
                 id="no-token"),
    pytest.param("signin", json_signin(b'{"token": 42}'), 502, "not a string", (1, 1),
                 id="int-token"),
    pytest.param("signin", json_signin(b'{"token": ""}'), 502, "token is empty", (1, 1),
                 id="empty-token"),
    pytest.param("signin", Respond(401, LEAK), 502, "rejected the API key (401)", (1, 1),
                 id="key-401"),
    pytest.param("signin", Respond(403, LEAK), 502, "rejected the API key (403)", (1, 1),
                 id="key-403"),
    pytest.param("page", page(b"<html><script>var x;</script>" + LEAK), 502,
                 "placeholder missing", (1, 1), id="no-placeholder"),
    pytest.param("page", page(PAGE.replace("</body>", PAGE).encode()), 502,
                 "2 token placeholders", (1, 1), id="two-placeholders"),
    pytest.param("page", page(PAGE.encode() + b" " * (10 * 1024 * 1024)), 502,
                 "larger than 2097152 bytes", (1, 1), id="10-mib"),
    pytest.param("page", page(gzip.compress(b" " * (50 * 1024 * 1024)), *HTML_UTF8,
                              ("content-encoding", "gzip")), 502,
                 "larger than 2097152 bytes", (1, 1), id="gzip-bomb"),
    pytest.param("page", Respond(302, LEAK, (("location", "http://elsewhere.example/x"),)),
                 502, "redirected to another host (elsewhere.example)", (1, 1),
                 id="redirect-other-host"),
    pytest.param("page", Respond(302, LEAK, (("location", "/store/demo-store"),)), 502,
                 "redirected more than 3 times", (1, 4), id="redirect-loop"),
    pytest.param("page", page(gzip.compress(PAGE.encode()), *HTML_UTF8,
                              ("content-encoding", "gzip")), 200, None, (1, 1), id="gzip"),
    pytest.param("page", page(zlib.compress(PAGE.encode()), *HTML_UTF8,
                              ("content-encoding", "deflate")), 200, None, (1, 1), id="deflate"),
    pytest.param("page", page(brotli.compress(PAGE.encode()), *HTML_UTF8,
                              ("content-encoding", "br")), 200, None, (1, 1), id="brotli"),
    pytest.param("page", page(PAGE.encode("latin-1"),
                              ("content-type", "text/html; charset=ISO-8859-1")),
                 200, None, (1, 1), id="latin-1"),
    pytest.param("page", page(PAGE.encode(), ("content-type", "text/html; charset=undefined")),
                 200, None, (1, 1), id="charset-undefined"),
    pytest.param("page", page(PAGE.encode(), ("content-type", "text/html; charset=idna")),
                 200, None, (1, 1), id="charset-idna"),
    pytest.param("page", page(PAGE.encode(), ("content-type", "text/html; charset=rot13")),
                 200, None, (1, 1), id="charset-not-text"),
    pytest.param("page", Respond(302, LEAK), 502, "redirected more than 3 times", (1, 4),
                 id="redirect-without-location"),
    pytest.param("page", Respond(302, LEAK, (("location", "http://[::1/x"),)), 502,
                 "redirected to a malformed location", (1, 1), id="malformed-location"),
    pytest.param("signin", json_signin(b'{"token": "' + b"t" * 1_000_000 + b'"}'), 502,
                 "token is 1000000 characters long", (1, 1), id="megabyte-token"),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "fault", "status", "logged", "hits"), FAULTS)
def test_fault(
    make_proxy: Callable[..., Proxy],
    faulty: FaultyUpstream,
    vendor: ReturningAIStandIn,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    fault: Fault,
    status: int,
    logged: str | None,
    hits: tuple[int, int],
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
    assert elapsed < DEADLINE + 2.0  # within the deadline; the margin is for a loaded machine
    assert LEAK.decode() not in response.text
    assert all(LEAK.decode() not in r.getMessage() for r in caplog.records)
    request_lines = [r.getMessage() for r in caplog.records if r.name == "widget_proxy.request"]
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

    # The faulty kind's attempts are all over when the answer comes; the other kind's
    # one request, made side by side with it, may still be on its way.
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: faulty.seen() == hits, timeout=5)
    assert faulty.seen() == hits
    other = "page" if kind == "signin" else "signin"
    assert vendor.calls[kind] == 0  # the fault answered every one of them
    assert vendor.calls[other] == faulty.faults.hits[other]

    # The upstream heals: the next request works, nothing restarted.
    if isinstance(fault, Refuse):
        faulty.start()
    faulty.faults.reset()
    healed = proxy.get("/widget", EMAIL)
    assert healed.status_code == 200
    assert token_in(healed.text)


@pytest.mark.slow
def test_a_burst_during_an_outage_ends_within_the_deadline_and_leaks_nothing(
    tmp_path: Path, faulty: FaultyUpstream, vendor: ReturningAIStandIn, leak_scanner: LeakScanner
) -> None:
    # The proxy runs as its own process, as in production, so the 500 requests of
    # this test's client don't share its interpreter.
    env = {**TIMING, "BREAKER_FAILURES": "5", "BREAKER_COOLDOWN": "1"}
    with serve(tmp_path, vendor, faulty.url, leak_scanner, **env) as proxy:
        faulty.faults.active["signin"] = Hang()
        faulty.faults.active["page"] = Hang()
        port = urlsplit(proxy.url).port
        assert port is not None
        cookies = [proxy.cookie(f"user{i}@example.com")["cookie"] for i in range(500)]

        started = time.monotonic()
        results = asyncio.run(burst(port, "/widget", cookies))
        elapsed = time.monotonic() - started

        assert len(results) == 500  # a request that failed outright is left out
        assert {r.status for r in results} <= {503, 504}
        assert elapsed < DEADLINE + 2.0  # the bound is the behaviour; generous margin
        for reply in results:  # every one of the 500 error answers, headers and body
            head = "\n".join(f"{k}: {v}" for k, v in reply.headers)
            leak_scanner.check("an outage answer", head + "\n" + reply.body.decode())
        faulty.faults.reset()

        with scanning_client(leak_scanner, base_url=proxy.url) as client:
            # After the breaker's 1 s cooldown one probe closes it; until then, 503 at once.
            def served() -> bool:
                return client.get("/widget", headers={"cookie": cookies[0]}).status_code == 200

            wait_until(served, timeout=15)
            assert client.get("/widget", headers={"cookie": cookies[0]}).status_code == 200
        # The connection pool is usable right after: a second burst goes through.
        again = asyncio.run(burst(port, "/widget", cookies[:100]))
        assert [r.status for r in again] == [200] * 100


def test_an_open_circuit_answers_at_once_but_cached_pages_still_work(
    make_proxy: Callable[..., Proxy], faulty: FaultyUpstream, vendor: ReturningAIStandIn
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
    assert faulty.seen() == (1 + 3, 1)  # each failed signin reached the upstream once

    started = time.monotonic()
    refused = proxy.get("/widget", "another@example.com", headers={"accept": "application/json"})

    assert time.monotonic() - started < 2.0  # at once: no attempt, no backoff, no deadline
    assert refused.status_code == 503
    assert refused.json()["error"] == "upstream_circuit_open"
    assert 1 <= int(refused.headers["retry-after"]) <= 30
    assert vendor.calls["signin"] == calls  # nothing was sent
    assert faulty.seen() == (1 + 3, 1)  # not even to the fault in front of the stand-in
    assert proxy.get("/widget", "cached@example.com").status_code == 200  # from the cache
    assert faulty.seen() == (1 + 3, 1)


def test_a_stale_page_is_served_while_the_vendor_fails(
    make_proxy: Callable[..., Proxy], faulty: FaultyUpstream
) -> None:
    clock = Clock(time.time())  # the proxy's caches read it; it moves only by hand
    proxy = make_proxy(WIDGET_BASE_URL=faulty.url, PAGE_CACHE_TTL="1", clock=clock, **TIMING)
    first = proxy.get("/widget", EMAIL)
    assert first.status_code == 200
    faulty.faults.active["page"] = Respond(500, LEAK)
    clock.now += 1.5  # the page is stale now, and PAGE_STALE_IF_ERROR keeps it servable

    stale = proxy.get("/widget", EMAIL)
    wait_until(lambda: faulty.seen()[1] == 2)  # its background refresh reached the vendor

    assert stale.status_code == 200
    assert token_in(stale.text) == token_in(first.text)
    assert proxy.get("/widget", EMAIL).status_code == 200  # and so is the next view
    assert LEAK.decode() not in stale.text


@pytest.mark.slow
def test_signin_and_page_run_side_by_side_and_the_first_failure_ends_both(
    make_proxy: Callable[..., Proxy], faulty: FaultyUpstream, vendor: ReturningAIStandIn
) -> None:
    proxy = make_proxy(WIDGET_BASE_URL=faulty.url, **{**TIMING, "UPSTREAM_DEADLINE": "8"})
    vendor.signin_delay = 6.0  # the signin would take 6 s; the page fails at once
    faulty.faults.active["page"] = Respond(500, LEAK)

    started = time.monotonic()
    response = proxy.get("/widget", EMAIL, headers={"accept": "application/json"})
    elapsed = time.monotonic() - started

    assert response.status_code == 502
    assert response.json()["error"] == "upstream_bad_status"
    assert faulty.seen() == (1, 1)  # both were asked, side by side
    assert elapsed < 4.0  # not the signin's 6 s: the failure cancelled it (generous bound)


@pytest.mark.slow
def test_the_connection_pool_bounds_calls_to_the_vendor(
    make_proxy: Callable[..., Proxy], faulty: FaultyUpstream
) -> None:
    proxy = make_proxy(
        WIDGET_BASE_URL=faulty.url,
        UPSTREAM_MAX_CONNECTIONS="1",
        UPSTREAM_POOL_TIMEOUT="0.3",
        UPSTREAM_RETRIES="0",
    )
    assert proxy.get("/widget", "warm@example.com").status_code == 200  # the page is cached
    faulty.faults.active["signin"] = Hang()

    with ThreadPoolExecutor(1) as pool:
        hung = pool.submit(proxy.get, "/widget", "first@example.com")
        wait_until(lambda: faulty.seen()[0] == 2)  # the one connection is taken
        waiting = proxy.get("/widget", "second@example.com", headers={"accept": "application/json"})
        faulty.faults.reset()
        hung.result(timeout=30)

    assert waiting.status_code == 504
    assert waiting.json()["error"] == "upstream_timeout"
    assert faulty.seen()[0] == 2  # the second signin never left: no free connection


@pytest.fixture
def faulty_neuroon() -> Iterator[FaultyUpstream[NeuroonStandIn]]:
    """Neuroon's stand-in (one shop token for every visitor) behind the fault switch."""
    server = FaultyUpstream(NeuroonStandIn(shop_id="shop-1", api_key=SHOP_KEY))
    server.start()
    yield server
    server.stop()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("status", "error"), [(500, "upstream_bad_status"), (401, "upstream_rejected_key")]
)
def test_a_shared_token_that_fails_is_asked_for_once_per_backoff_and_shows_as_degraded(
    make_proxy: Callable[..., Proxy],
    faulty_neuroon: FaultyUpstream[NeuroonStandIn],
    leak_scanner: LeakScanner,
    status: int,
    error: str,
) -> None:
    # One token for the whole shop: every visitor is the same "caller", so the breaker's
    # per-caller count never opened, and every request asked the vendor again.
    clock = Clock(time.time())  # the token cache's back-off reads it; it moves by hand
    env = {
        **neuroon_env(NEUROON_TOKEN_MODE="remote", NEUROON_API_URL=faulty_neuroon.url),
        **UNLIMITED,
        "BREAKER_COOLDOWN": "1",  # real seconds (the breaker's own clock); the back-off's bound
    }
    proxy = make_proxy(settings=Settings.from_env(env), clock=clock)
    faulty_neuroon.faults.active["signin"] = Respond(status, LEAK)
    json = {"accept": "application/json"}

    one_by_one = [proxy.client.get("/widget", headers=json) for _ in range(10)]
    one_by_one += [proxy.client.post("/widget/token", headers=json) for _ in range(10)]
    port = urlsplit(proxy.url).port
    assert port is not None
    at_once = asyncio.run(burst(port, "/widget", [""] * 100))  # anonymous, all at once

    assert faulty_neuroon.faults.hits["signin"] == 1  # one issue for the back-off's length
    assert faulty_neuroon.vendor.calls["token_issue"] == 0  # the fault answered it
    for response in one_by_one:
        assert response.status_code == 502
        assert response.json()["error"] == error
        assert 1 <= int(response.headers["retry-after"]) <= 1
    assert len(at_once) == 100
    for reply in at_once:
        assert reply.status == 502
        assert dict(reply.headers)["retry-after"] == "1"
        leak_scanner.check("a back-off answer", reply.body.decode())
    degraded = proxy.client.get("/readyz").json()["degraded"]
    assert error in degraded["token"]
    # A failing vendor opens the circuit at once; a refused key is no outage of its.
    assert any(part.startswith("upstream ") for part in degraded) == (status >= 500)
    found = samples(proxy.client.get("/metrics").text)
    assert value(found, "widget_proxy_degraded", part="token") == 1.0

    # The vendor recovers; once the circuit lets a probe through and the back-off has
    # passed, the next request is issued a token, and nothing is degraded any more.
    faulty_neuroon.faults.reset()
    wait_until(lambda: not any(
        "circuit open" in why for why in proxy.client.get("/readyz").json()["degraded"].values()
    ))  # fmt: skip
    clock.now += 1
    healed = proxy.client.post("/widget/token")
    assert healed.status_code == 200
    assert faulty_neuroon.vendor.token_problem(healed.json()["token"]) is None
    assert faulty_neuroon.faults.hits["signin"] == 2
    assert proxy.client.get("/readyz").json()["degraded"] == {}
    found = samples(proxy.client.get("/metrics").text)
    assert value(found, "widget_proxy_degraded", part="token") == 0.0
