"""Retries, deadline and circuit breaker of the upstream client, on a mock transport."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx2
import pytest

from tests.support import Clock
from widget_proxy.errors import (
    CircuitOpen,
    UpstreamBadStatus,
    UpstreamBusy,
    UpstreamError,
    UpstreamRejectedKey,
    UpstreamUnavailable,
)
from widget_proxy.upstream.breaker import Breaker, BreakerPolicy
from widget_proxy.upstream.client import HttpClient, Retries

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
    handler: Callable[[httpx2.Request], httpx2.Response],
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


def test_breaker_lifecycle() -> None:
    clock = Clock()
    breaker = Breaker("https://w.example", failures=3, cooldown=30, clock=clock)

    for _ in range(2):
        breaker.failed(breaker.before())
    breaker.succeeded(breaker.before())  # a success resets the count
    for _ in range(3):
        breaker.failed(breaker.before())
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        breaker.before()

    clock.now += 30
    assert breaker.state == "half-open"
    probe = breaker.before()
    assert probe.probe is True  # the probe
    with pytest.raises(CircuitOpen):
        breaker.before()  # everyone else waits for its verdict
    breaker.failed(probe)
    assert breaker.state == "open"  # the probe failed: open again

    clock.now += 30
    probe = breaker.before()
    assert probe.probe is True
    breaker.ended(probe)  # the probe was cancelled: another may go
    probe = breaker.before()
    assert probe.probe is True
    breaker.succeeded(probe)
    assert breaker.state == "closed"
    assert breaker.before().probe is False


def test_a_half_open_breaker_lets_the_whole_probing_request_through() -> None:
    import contextvars

    from widget_proxy.upstream.breaker import one_caller

    clock = Clock()
    breaker = Breaker("https://w.example", failures=1, cooldown=30, clock=clock)
    breaker.failed(breaker.before())
    clock.now += 30

    def probing_request() -> tuple[bool, bool]:
        one_caller()
        signin, page = breaker.before(), breaker.before()  # two calls of one request
        return signin.probe, page.probe

    assert contextvars.copy_context().run(probing_request) == (True, False)
    with pytest.raises(CircuitOpen):
        contextvars.copy_context().run(probing_request)  # another request waits


def test_one_caller_failing_again_and_again_opens_no_circuit() -> None:
    import contextvars

    from widget_proxy.upstream.breaker import one_caller

    breaker = Breaker("https://w.example", failures=3, cooldown=30, clock=Clock())

    def request(user: str) -> None:
        one_caller(user)
        breaker.failed(breaker.before())

    for _ in range(10):  # one user whose signin the vendor keeps refusing with a 5xx
        contextvars.copy_context().run(request, "tok:one-user")
    assert breaker.state == "closed"  # everybody else is still served
    for user in ("tok:two", "tok:three"):
        contextvars.copy_context().run(request, user)
    assert breaker.state == "open"  # three different callers failed in a row


def test_only_the_probe_closes_an_open_circuit() -> None:
    clock = Clock()
    breaker = Breaker("https://w.example", failures=1, cooldown=30, clock=clock)
    slow = breaker.before()  # begun while all was well
    breaker.failed(breaker.before())
    assert breaker.state == "open"

    breaker.succeeded(slow)  # it answers now, but began before the circuit opened

    assert breaker.state == "open"
    clock.now += 30
    breaker.failed(slow)  # and its late failure doesn't reopen a half-open circuit
    assert breaker.state == "half-open"
    breaker.succeeded(breaker.before())
    assert breaker.state == "closed"


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


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", "120"),
        (" 7 ", "7"),
        ("999999999", "999999999"),  # nine digits: the longest taken as given
        ("9999999999", None),  # ten: nonsense
        ("-5", None),
        ("soon", None),
        (None, None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", "0"),  # a date in the past: come back now
    ],
)
def test_retry_after_is_read_as_delay_seconds_or_a_date(
    value: str | None, seconds: str | None
) -> None:
    from widget_proxy.upstream.answers import retry_after as _retry_after

    assert _retry_after(value) == seconds


def test_retry_after_as_a_date_in_the_future() -> None:
    import email.utils

    from widget_proxy.upstream.answers import retry_after as _retry_after

    when = email.utils.formatdate(time.time() + 90, usegmt=True)

    assert _retry_after(when) in {"89", "90", "91"}


def test_a_retry_goes_only_while_the_breaker_admits_the_call() -> None:
    clock = Clock()
    breaker = Breaker("https://w.example", failures=1, cooldown=30, clock=clock)
    early = breaker.before()  # a call under way while all is well
    breaker.failed(breaker.before())
    clock.now += 30
    probe = breaker.before()

    assert breaker.admits(probe)
    assert not breaker.admits(early)  # half-open, and not the probe: no more attempts
    breaker.ended(early)  # its end says nothing about the probe
    with pytest.raises(CircuitOpen):
        breaker.before()  # still one probe at a time
    breaker.succeeded(probe)
    assert breaker.admits(early)  # closed again: anyone may retry


def test_a_failure_from_before_the_last_opening_is_not_counted() -> None:
    clock = Clock()
    breaker = Breaker("https://w.example", failures=2, cooldown=30, clock=clock)
    stale = breaker.before()
    for _ in range(2):
        breaker.failed(breaker.before())
    clock.now += 30
    breaker.succeeded(breaker.before())  # the probe closes it again
    assert breaker.state == "closed"

    breaker.failed(stale)  # began two breaker generations ago
    breaker.failed(breaker.before())  # one fresh failure

    assert breaker.state == "closed"  # one current failure is not two


def test_an_open_circuit_says_when_to_come_back() -> None:
    clock = Clock()
    breaker = Breaker("https://w.example", failures=1, cooldown=30, clock=clock)
    breaker.failed(breaker.before())

    clock.now += 10
    with pytest.raises(CircuitOpen) as caught:
        breaker.before()
    assert caught.value.retry_after == "20"
    clock.now += 19.5
    with pytest.raises(CircuitOpen) as caught:
        breaker.before()
    assert caught.value.retry_after == "1"  # half a second left: one, never zero


def test_the_breaker_logs_which_origin_opened_and_closed(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    breaker = Breaker("https://w.example", failures=2, cooldown=30, clock=clock)
    with caplog.at_level("WARNING", logger="widget_proxy.upstream"):
        for _ in range(2):
            breaker.failed(breaker.before())
        clock.now += 30
        breaker.succeeded(breaker.before())

    assert (
        "circuit to https://w.example opened after failed calls from 2 callers in a row;"
        " refusing calls for 30 s" in caplog.text
    )
    assert "circuit to https://w.example closed: the upstream answers again" in caplog.text
