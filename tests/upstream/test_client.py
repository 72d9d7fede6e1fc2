"""Retries, deadline and circuit breaker of the upstream client, on a mock transport."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

import httpx2
import pytest

from widget_proxy import configure_logging
from widget_proxy.__version__ import __version__
from widget_proxy.errors import (
    CircuitOpen,
    UpstreamBadResponse,
    UpstreamBadStatus,
    UpstreamBusy,
    UpstreamError,
    UpstreamRejectedKey,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from widget_proxy.ops.metrics import CIRCUIT_STATES, Metrics
from widget_proxy.upstream.breaker import BreakerPolicy
from widget_proxy.upstream.client import HttpClient, Limits, Reply, Retries, Timeouts

URL = "https://widgets.example.com/store/w-1"


class Script:
    """Answers from a list, one per attempt; counts the attempts."""

    def __init__(self, *answers: httpx2.Response | Exception) -> None:
        self.answers = list(answers)
        self.attempts = 0

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        answer = self.answers[min(self.attempts, len(self.answers) - 1)]
        self.attempts += 1
        if isinstance(answer, Exception):
            raise answer
        return answer


def client(
    handler: Callable[[httpx2.Request], httpx2.Response | Awaitable[httpx2.Response]],
    *,
    retries: int = 2,
    deadline: float = 8.0,
    failures: int = 100,
    cooldown: float = 30.0,
) -> HttpClient:
    """The defaults are UPSTREAM_RETRIES, UPSTREAM_DEADLINE and BREAKER_COOLDOWN's; the
    breaker stays out of the way (100 failures) unless a test asks for it."""
    return HttpClient(
        retries=Retries(retries=retries, deadline=deadline),
        breaker=BreakerPolicy(failures=failures, cooldown=cooldown),
        transport=httpx2.MockTransport(handler),
    )


async def call(http: HttpClient) -> int:
    reply = await http.call("signin", "POST", URL, headers={}, key_statuses=frozenset({401, 403}))
    return reply.status


OK = httpx2.Response(200, text="{}")
REFUSED = httpx2.ConnectError("refused")

# (answers, attempts made, outcome): an int is the final status, a class the error.
RETRIES = [
    pytest.param([httpx2.Response(502), httpx2.Response(504), OK], 3, 200, id="502-504-ok"),
    pytest.param([REFUSED, OK], 2, 200, id="refused-then-ok"),
    pytest.param([httpx2.ReadTimeout("slow"), OK], 2, 200, id="timeout-then-ok"),
    pytest.param([httpx2.Response(503), httpx2.Response(503), httpx2.Response(503), OK], 3,
                 UpstreamBusy, id="503-three-times"),
    pytest.param([httpx2.Response(500), OK], 1, UpstreamBadStatus, id="500-not-retried"),
    pytest.param([httpx2.Response(400), OK], 1, UpstreamBadStatus, id="400-not-retried"),
    pytest.param([httpx2.Response(401), OK], 1, UpstreamRejectedKey, id="401-not-retried"),
    pytest.param([httpx2.Response(403), OK], 1, UpstreamRejectedKey, id="403-not-retried"),
    pytest.param([httpx2.Response(429), OK], 1, UpstreamBusy, id="429-without-retry-after"),
    pytest.param([httpx2.Response(429, headers={"retry-after": "0"}), OK], 2, 200,
                 id="429-retry-after-fits"),
    pytest.param([httpx2.Response(503, headers={"retry-after": "60"}), OK], 1, UpstreamBusy,
                 id="503-retry-after-too-long"),
]  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize(("answers", "attempts", "outcome"), RETRIES)
async def test_retry_policy(
    answers: list[httpx2.Response | Exception],
    attempts: int,
    outcome: int | type[UpstreamError],
) -> None:
    script = Script(*answers)
    http = client(script)

    if isinstance(outcome, int):
        assert await call(http) == outcome
    else:
        with pytest.raises(outcome):
            await call(http)
    assert script.attempts == attempts


@pytest.mark.anyio
async def test_a_retry_after_that_does_not_fit_is_passed_to_the_browser() -> None:
    http = client(Script(httpx2.Response(429, headers={"retry-after": "60"})))

    with pytest.raises(UpstreamBusy) as caught:
        await call(http)

    assert caught.value.retry_after == "60"


@pytest.mark.anyio
async def test_the_deadline_bounds_all_attempts() -> None:
    def slow(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused")

    deadline = 0.3
    http = client(slow, deadline=deadline, retries=50)  # 50 backoffs: many seconds without it
    started = time.monotonic()

    with pytest.raises(UpstreamError) as caught:
        await call(http)

    assert time.monotonic() - started < deadline + 1.0  # the bound is the behaviour
    assert "attempts" in caught.value.detail or "deadline" in caught.value.detail


@pytest.mark.anyio
async def test_the_breaker_opens_and_fails_fast() -> None:
    script = Script(REFUSED)
    http = client(script, failures=2, retries=1)

    for _ in range(2):  # two callers' calls of two attempts each: a call counts once
        with pytest.raises(UpstreamError) as failed:
            await call(http)
        assert not isinstance(failed.value, CircuitOpen)  # each call's own failure
    with pytest.raises(CircuitOpen) as caught:
        await call(http)

    assert script.attempts == 4  # the third call never reached the upstream
    assert caught.value.detail == "circuit to https://widgets.example.com is open"
    assert caught.value.status == 503
    assert caught.value.retry_after == "30"
    assert http.breaker(URL).state == "open"


@pytest.mark.anyio
async def test_breakers_are_per_origin() -> None:
    http = client(Script(REFUSED), failures=1, retries=0)

    with pytest.raises(UpstreamError):
        await call(http)

    assert http.breaker(URL).state == "open"
    assert http.breaker("https://other.example/x").state == "closed"


@pytest.mark.anyio
async def test_a_call_whose_own_retries_open_the_circuit_reports_its_own_failure() -> None:
    script = Script(REFUSED)
    http = client(script, failures=1, retries=2)

    with pytest.raises(UpstreamError) as caught:
        await call(http)

    assert caught.value.code == "upstream_unavailable"  # not upstream_circuit_open
    assert script.attempts == 3  # all its attempts: it counts once, at the end
    assert http.breaker(URL).state == "open"


def test_the_backoff_doubles_up_to_its_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    from widget_proxy.upstream import client as module

    monkeypatch.setattr(module.random, "uniform", lambda low, high: high)  # the jitter's top
    http = HttpClient(retries=Retries(retries=10, deadline=60.0))
    retry = UpstreamUnavailable("refused", retryable=True)
    deadline = time.monotonic() + 60

    delays = [http._retry_delay(retry, attempt, deadline) for attempt in range(7)]

    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]  # BACKOFF_BASE * 2**n, capped
    assert http._retry_delay(retry, 10, deadline) is None  # out of retries
    assert http._retry_delay(retry, 0, time.monotonic() + 0.05) is None  # past the deadline
    assert http._retry_delay(UpstreamUnavailable("x"), 0, deadline) is None  # not retryable


@pytest.mark.anyio
async def test_by_default_five_failed_callers_open_the_circuit_for_thirty_seconds() -> None:
    metrics = Metrics()
    script = Script(REFUSED)
    http = HttpClient(
        retries=Retries(retries=0), metrics=metrics, transport=httpx2.MockTransport(script)
    )

    def gauge() -> float | None:
        labels = {"origin": "https://widgets.example.com"}
        return metrics.registry.get_sample_value("widget_proxy_circuit_state", labels)

    for _ in range(4):
        with pytest.raises(UpstreamUnavailable):
            await call(http)
    assert gauge() == CIRCUIT_STATES["closed"]
    with pytest.raises(UpstreamUnavailable):
        await call(http)
    assert gauge() == CIRCUIT_STATES["open"]
    with pytest.raises(CircuitOpen) as caught:
        await call(http)
    assert caught.value.retry_after == "30"
    assert script.attempts == 5


def not_gzip() -> httpx2.Response:
    """A body that says it is gzip and isn't."""
    gzip = {"content-encoding": "gzip"}
    return httpx2.Response(200, headers=gzip, stream=httpx2.ByteStream(b"not gzip"))


# Which answers say the upstream is unwell: they count against its circuit breaker.
# Each case makes its answer when it runs: a response's body can be read once, and a
# mutation run runs the same case more than once in one process.
@pytest.mark.anyio
@pytest.mark.parametrize(
    ("answer", "opens"),
    [
        pytest.param(partial(httpx2.Response, 500), True, id="500"),
        pytest.param(partial(httpx2.Response, 502), True, id="502"),
        pytest.param(partial(httpx2.Response, 503), True, id="503"),
        pytest.param(lambda: REFUSED, True, id="refused"),
        pytest.param(partial(httpx2.ReadTimeout, "slow"), True, id="timeout"),
        pytest.param(partial(httpx2.Response, 400), False, id="400"),
        pytest.param(partial(httpx2.Response, 401), False, id="401-the-key"),
        pytest.param(partial(httpx2.Response, 429), False, id="429"),
        pytest.param(not_gzip, False, id="undecodable-body"),
    ],
)
async def test_what_counts_against_the_breaker(
    answer: Callable[[], httpx2.Response | Exception], opens: bool
) -> None:
    http = client(Script(answer()), failures=1, retries=0)

    with pytest.raises(UpstreamError):
        await call(http)

    assert http.breaker(URL).state == ("open" if opens else "closed")


@pytest.mark.anyio
async def test_one_log_line_and_one_count_per_call_however_many_attempts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    script = Script(httpx2.Response(502), httpx2.Response(504), OK, REFUSED)
    http = HttpClient(
        retries=Retries(retries=2), metrics=metrics, transport=httpx2.MockTransport(script)
    )

    with caplog.at_level("INFO", logger="widget_proxy.upstream"):
        assert await call(http) == 200
        with pytest.raises(UpstreamUnavailable):
            await call(http)

    def calls(outcome: str) -> float | None:
        labels = {"kind": "signin", "outcome": outcome}
        return metrics.registry.get_sample_value("widget_proxy_upstream_calls_total", labels)

    assert (calls("ok"), calls("upstream_unavailable")) == (1, 1)
    seconds = metrics.registry.get_sample_value(
        "widget_proxy_upstream_duration_seconds_count", {"kind": "signin"}
    )
    assert seconds == 2
    lines = [r.getMessage() for r in caplog.records if r.name == "widget_proxy.upstream"]
    assert len(lines) == 2
    assert re.fullmatch(
        r"upstream - signin POST /store/w-1 answered 200 in \d+ ms \(attempt 3\)", lines[0]
    )
    assert re.fullmatch(
        r"upstream - signin POST /store/w-1 failed after \d+ ms \(attempt 3\):"
        r" signin connection failed \(ConnectError\) \(after 3 attempts\)",
        lines[1],
    )
    assert [r.levelname for r in caplog.records if r.name == "widget_proxy.upstream"] == [
        "INFO",
        "WARNING",
    ]


@pytest.mark.anyio
async def test_a_retry_stops_when_others_opened_the_circuit_meanwhile() -> None:
    attempts = 0

    def answer(request: httpx2.Request) -> httpx2.Response:
        nonlocal attempts
        attempts += 1
        breaker = http.breaker(URL)
        breaker.failed(breaker.before())  # another request's call fails meanwhile
        return httpx2.Response(502)

    http = client(answer, failures=1, retries=2)

    with pytest.raises(UpstreamBadStatus) as caught:
        await call(http)

    assert caught.value.detail == "signin answered 502 (after 1 attempts; then the circuit opened)"
    assert attempts == 1


@pytest.mark.anyio
async def test_a_cancelled_probe_lets_the_next_call_probe() -> None:
    mode = "refuse"
    release, entered = asyncio.Event(), asyncio.Event()

    async def upstream(request: httpx2.Request) -> httpx2.Response:
        if mode == "refuse":
            raise REFUSED
        if mode == "hang":
            entered.set()
            await release.wait()
        return OK

    http = client(upstream, failures=1, retries=0, cooldown=0)
    with pytest.raises(UpstreamUnavailable):
        await call(http)  # opens the circuit; with no cooldown, the next call probes
    mode = "hang"
    probe = asyncio.ensure_future(call(http))
    await entered.wait()
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe

    mode = "answer"
    assert await call(http) == 200  # not refused: the cancelled probe let another go
    assert http.breaker(URL).state == "closed"


class Pages:
    """An upstream of pages by path; records every request it receives."""

    def __init__(self, pages: dict[str, httpx2.Response]) -> None:
        self.pages = pages
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return self.pages[request.url.path]


def moved(to: str, status: int = 302) -> httpx2.Response:
    return httpx2.Response(status, headers={"location": to})


async def page(http: HttpClient, headers: dict[str, str] | None = None) -> Reply:
    return await http.call("page", "GET", URL, headers=headers or {}, params={"color": "dark"})


@pytest.mark.anyio
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_page_follows_redirects_within_its_origin(status: int) -> None:
    upstream = Pages({"/store/w-1": moved("/a", status), "/a": moved("b"), "/b": OK})
    http = client(upstream)

    reply = await page(http)

    assert (reply.status, reply.text, reply.url) == (200, "{}", "https://widgets.example.com/b")
    assert [str(r.url) for r in upstream.requests] == [
        URL + "?color=dark",  # the query is the first URL's; a redirect names its own
        "https://widgets.example.com/a",
        "https://widgets.example.com/b",
    ]


@pytest.mark.anyio
async def test_redirects_are_followed_three_times_at_most() -> None:
    hops = {"/store/w-1": moved("/1"), "/1": moved("/2"), "/2": moved("/3")}
    three = Pages({**hops, "/3": OK})
    four = Pages({**hops, "/3": moved("/4"), "/4": OK})

    assert (await page(client(three))).status == 200
    with pytest.raises(UpstreamBadStatus) as caught:
        await page(client(four))

    assert caught.value.detail == "page redirected more than 3 times"
    assert len(four.requests) == 4


@pytest.mark.anyio
async def test_a_post_is_not_redirected() -> None:
    upstream = Pages({"/store/w-1": moved("/elsewhere")})

    with pytest.raises(UpstreamBadStatus) as caught:
        await call(client(upstream))

    assert caught.value.detail == "signin answered 302"
    assert len(upstream.requests) == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("headers", "outcome"),
    [
        ({"if-none-match": '"v1"'}, 304),
        ({"if-modified-since": "Wed, 21 Oct 2015 07:28:00 GMT"}, 304),
        ({}, "page answered 304"),  # unasked for, a 304 is a bad answer
    ],
)
async def test_not_modified_is_an_answer_only_to_a_conditional_request(
    headers: dict[str, str], outcome: int | str
) -> None:
    http = client(Pages({"/store/w-1": httpx2.Response(304, headers={"etag": '"v1"'})}))

    if isinstance(outcome, int):
        reply = await page(http, headers)
        assert (reply.status, reply.text, reply.headers["etag"]) == (304, "", '"v1"')
        assert reply.url == URL
        return
    with pytest.raises(UpstreamBadStatus) as caught:
        await page(http, headers)
    assert caught.value.detail == outcome


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def streamed(*parts: bytes) -> httpx2.Response:
    """A body sent in chunks, with no Content-Length."""
    return httpx2.Response(200, content=chunks(*parts))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "fits"),
    [
        pytest.param(lambda: httpx2.Response(200, content=b"x" * 100), True, id="declared-100"),
        pytest.param(lambda: httpx2.Response(200, content=b"x" * 101), False, id="declared-101"),
        pytest.param(
            lambda: httpx2.Response(200, headers={"content-length": "101"}, content=chunks(b"x")),
            False,
            id="declares-101-sends-1",
        ),
        pytest.param(
            lambda: httpx2.Response(200, content=chunks(b"x" * 60, b"x" * 40)),
            True,
            id="chunked-100",
        ),
        pytest.param(
            lambda: httpx2.Response(200, content=chunks(b"x" * 60, b"x" * 41)),
            False,
            id="chunked-101",
        ),
    ],
)
async def test_a_body_over_the_limit_is_refused(
    body: Callable[[], httpx2.Response], fits: bool
) -> None:
    script = Script(body())
    http = HttpClient(limits=Limits(max_bytes=100), transport=httpx2.MockTransport(script))

    if fits:
        assert (await page(http)).text == "x" * 100
        return
    with pytest.raises(UpstreamBadResponse) as caught:
        await page(http)
    assert caught.value.detail == "page body is larger than 100 bytes"
    assert script.attempts == 1  # not retried


@pytest.mark.anyio
async def test_an_undecodable_body_is_a_bad_response() -> None:
    with pytest.raises(UpstreamBadResponse) as caught:
        await page(client(Script(not_gzip())))

    assert caught.value.detail == "page body could not be decoded"


@pytest.mark.anyio
async def test_the_body_is_read_in_its_declared_charset() -> None:
    latin = httpx2.Response(
        200,
        headers={"content-type": "text/html; charset=ISO-8859-1"},
        content="é".encode("latin-1"),
    )

    reply = await page(client(Script(latin)))

    assert (reply.text, reply.headers["content-type"]) == ("é", "text/html; charset=ISO-8859-1")


@pytest.mark.anyio
async def test_what_the_upstream_receives() -> None:
    upstream = Pages({"/store/w-1": OK})
    http = client(upstream)

    await http.call(
        "signin", "POST", URL, headers={"x-api-key": "k"}, content=b'{"email": "a@b.c"}'
    )

    sent = upstream.requests[0]
    assert (sent.method, sent.content) == ("POST", b'{"email": "a@b.c"}')
    assert sent.headers["x-api-key"] == "k"
    assert sent.headers["user-agent"] == f"widget-proxy/{__version__}"


@pytest.mark.anyio
async def test_a_call_waits_for_a_free_connection_no_longer_than_the_pool_timeout() -> None:
    release, entered = asyncio.Event(), asyncio.Event()

    async def busy(request: httpx2.Request) -> httpx2.Response:
        entered.set()
        await release.wait()
        return OK

    http = HttpClient(
        timeouts=Timeouts(pool=0.05),
        limits=Limits(max_connections=1),
        breaker=BreakerPolicy(failures=1),
        transport=httpx2.MockTransport(busy),
    )
    first = asyncio.ensure_future(page(http))
    await entered.wait()

    with pytest.raises(UpstreamTimeout) as caught:
        await page(http)  # the one connection is taken

    assert caught.value.detail == "page found no free connection within 0.05 s"
    release.set()
    assert (await first).status == 200
    assert http.breaker(URL).state == "closed"  # a wait of ours says nothing of the vendor
    assert (await page(http)).status == 200  # the slot was given back


@pytest.mark.anyio
async def test_a_response_hook_hears_every_answer_retries_and_redirects_included() -> None:
    heard: list[int] = []

    async def hook(response: httpx2.Response) -> None:
        heard.append(response.status_code)

    upstream = Pages({"/store/w-1": moved("/a"), "/a": httpx2.Response(502)})
    http = client(upstream, retries=1)
    http.on_response(hook)

    with pytest.raises(UpstreamBadStatus):
        await page(http)

    assert heard == [302, 502, 302, 502]


@pytest.mark.anyio
async def test_each_attempt_runs_under_the_timeouts_given() -> None:
    seen: list[object] = []

    def upstream(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.extensions["timeout"])  # what httpcore2 applies
        return OK

    http = HttpClient(
        timeouts=Timeouts(connect=1.5, read=2.5, pool=3.5),
        transport=httpx2.MockTransport(upstream),
    )

    await page(http)

    assert seen == [{"connect": 1.5, "read": 2.5, "write": 2.5, "pool": 3.5}]


def test_the_connection_pool_holds_as_many_connections_as_the_limit() -> None:
    http = HttpClient(limits=Limits(max_connections=7))  # the real transport: no I/O yet

    pool = http._client._transport._pool  # type: ignore[attr-defined]

    assert (pool._max_connections, pool._max_keepalive_connections) == (7, 7)


@pytest.mark.anyio
async def test_a_call_that_misses_the_deadline_times_out_and_counts_against_the_breaker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def hung(request: httpx2.Request) -> httpx2.Response:
        await asyncio.sleep(1)  # longer than the deadline; no read timeout on a mock
        return OK

    metrics = Metrics()
    http = HttpClient(
        retries=Retries(retries=0, deadline=0.05),
        breaker=BreakerPolicy(failures=1),
        metrics=metrics,
        transport=httpx2.MockTransport(hung),
    )

    with (
        caplog.at_level("INFO", logger="widget_proxy.upstream"),
        pytest.raises(UpstreamTimeout) as caught,
    ):
        await call(http)

    assert caught.value.detail == "signin missed the 0.05 s deadline"
    assert (caught.value.unhealthy, caught.value.retryable) == (True, False)
    assert http.breaker(URL).state == "open"
    labels = {"kind": "signin", "outcome": "upstream_timeout"}
    assert metrics.registry.get_sample_value("widget_proxy_upstream_calls_total", labels) == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "widget_proxy.upstream"]
    assert any(
        re.fullmatch(
            r"upstream - signin POST /store/w-1 failed after \d+ ms \(attempt \d\):"
            r" signin missed the 0.05 s deadline",
            line,
        )
        for line in lines
    )


@pytest.mark.anyio
async def test_a_read_that_times_out_says_so() -> None:
    with pytest.raises(UpstreamTimeout) as caught:
        await call(client(Script(httpx2.ReadTimeout("slow")), retries=0))

    assert caught.value.detail == "signin timed out"


@pytest.mark.anyio
async def test_a_redirect_to_another_host_names_the_call() -> None:
    upstream = Pages({"/store/w-1": moved("https://elsewhere.example/x")})

    with pytest.raises(UpstreamBadStatus) as caught:
        await page(client(upstream))

    assert (
        caught.value.detail == "page redirected to another host (elsewhere.example); not followed"
    )


class Clock:
    """The client's `time`: a monotonic clock that moves only when told."""

    def __init__(self, now: float) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


@pytest.mark.anyio
async def test_the_log_line_and_the_histogram_give_each_call_its_duration(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from widget_proxy.upstream import client as module

    clock = Clock(1000.0)
    monkeypatch.setattr(module, "time", clock)  # asyncio keeps its own clock
    answers = iter([OK, httpx2.Response(500)])

    def upstream(request: httpx2.Request) -> httpx2.Response:
        clock.now += 2.0  # each call takes two seconds
        return next(answers)

    metrics = Metrics()
    http = HttpClient(metrics=metrics, transport=httpx2.MockTransport(upstream))

    with caplog.at_level("INFO", logger="widget_proxy.upstream"):
        await call(http)
        with pytest.raises(UpstreamBadStatus):
            await call(http)

    lines = [r.getMessage() for r in caplog.records if r.name == "widget_proxy.upstream"]
    assert lines == [
        "upstream - signin POST /store/w-1 answered 200 in 2000 ms (attempt 1)",
        "upstream - signin POST /store/w-1 failed after 2000 ms (attempt 1): signin answered 500",
    ]
    seconds = metrics.registry.get_sample_value(
        "widget_proxy_upstream_duration_seconds_sum", {"kind": "signin"}
    )
    assert seconds == 4.0


def test_a_wait_that_would_end_at_the_deadline_is_not_waited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from widget_proxy.upstream import client as module

    monkeypatch.setattr(module, "time", Clock(100.0))
    http = HttpClient()
    busy = UpstreamBusy("signin answered 429", retry_after="1", retryable=True)

    assert http._retry_delay(busy, 0, 101.5) == 1.0
    assert http._retry_delay(busy, 0, 101.0) is None  # no time left for the attempt


@pytest.mark.anyio
@pytest.mark.usefixtures("proxy_logging")
async def test_each_call_is_one_json_line_with_its_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One line per call (`widget_proxy.upstream`), fields for a log search: the URL's
    path only (its query may carry a key); the HTTP library's own line only at DEBUG."""
    script = Script(httpx2.Response(502), OK, httpx2.Response(500))
    http = HttpClient(
        vendor="acme", retries=Retries(retries=2), transport=httpx2.MockTransport(script)
    )
    configure_logging("INFO", "json")

    assert await call(http) == 200  # a retry, then its answer
    with pytest.raises(UpstreamBadStatus):
        await http.call("page", "GET", URL, headers={}, params={"key": "in-the-query"})
    err = capsys.readouterr().err

    lines = [json.loads(line) for line in err.splitlines()]
    assert [line["logger"] for line in lines] == ["widget_proxy.upstream"] * 2
    fields = ("level", "vendor", "operation", "method", "url_path", "status", "attempt")
    assert [tuple(line[f] for f in fields) for line in lines] == [
        ("info", "acme", "signin", "POST", "/store/w-1", 200, 2),
        ("warning", "acme", "page", "GET", "/store/w-1", 500, 1),
    ]
    assert all(isinstance(line["ms"], float) for line in lines)
    assert "in-the-query" not in err
    assert "HTTP Request" not in err

    assert not logging.getLogger("httpx2").isEnabledFor(logging.INFO)
    configure_logging("DEBUG", "json")  # (its line then goes wherever the app's root sends it)
    assert logging.getLogger("httpx2").isEnabledFor(logging.INFO)
