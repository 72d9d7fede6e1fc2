"""The circuit breaker on its own, on an injected clock: when it opens, who probes, what counts."""

from __future__ import annotations

import contextvars

import pytest

from tests.support import Clock
from widget_proxy.errors import CircuitOpen
from widget_proxy.upstream.breaker import Breaker, one_caller


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


def test_a_caller_for_every_visitor_opens_the_circuit_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    breaker = Breaker("https://w.example", failures=5, cooldown=30, clock=clock)

    def request(shared: bool) -> object:
        one_caller("tok:the-shop", shared=shared)
        ticket = breaker.before()
        breaker.failed(ticket)
        return ticket.caller

    first = contextvars.copy_context().run(request, False)  # a per-user key: one of five
    assert breaker.state == "closed"
    with caplog.at_level("WARNING", logger="widget_proxy.upstream"):
        shared = contextvars.copy_context().run(request, True)  # a token everybody shares

    assert breaker.state == "open"  # its failure is every visitor's
    assert first == "tok:the-shop"  # the user's key: the same user again is one caller
    assert shared != "tok:the-shop"  # not so for everybody
    assert (
        "circuit to https://w.example opened after a call for every visitor (a shared token)"
        " failed; refusing calls for 30 s" in caplog.text
    )
    clock.now += 30
    contextvars.copy_context().run(request, True)  # the probe fails: open again
    assert breaker.state == "open"
    clock.now += 30

    def probing() -> None:
        one_caller("tok:the-shop", shared=True)
        breaker.before()

    contextvars.copy_context().run(probing)  # the next request probes, and is slow
    with pytest.raises(CircuitOpen):  # another request for the same shared key waits
        contextvars.copy_context().run(probing)


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


@pytest.mark.parametrize("earlier_openings", [0, 1, 2])
def test_a_failure_from_before_the_last_opening_is_not_counted(earlier_openings: int) -> None:
    clock = Clock()
    breaker = Breaker("https://w.example", failures=2, cooldown=30, clock=clock)

    def open_and_close() -> None:
        for _ in range(2):
            breaker.failed(breaker.before())
        clock.now += 30
        breaker.succeeded(breaker.before())  # the probe closes it again
        assert breaker.state == "closed"

    for _ in range(earlier_openings):
        open_and_close()
    stale = breaker.before()
    open_and_close()

    breaker.failed(stale)  # began before the circuit last opened
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

    assert [r.getMessage() for r in caplog.records if r.name == "widget_proxy.upstream"] == [
        "circuit to https://w.example opened after failed calls from 2 callers in a row;"
        " refusing calls for 30 s",
        "circuit to https://w.example closed: the upstream answers again",
    ]


def test_the_probing_requests_other_call_may_retry_and_counts_once_closed() -> None:
    clock = Clock()
    breaker = Breaker("https://w.example", failures=1, cooldown=30, clock=clock)
    breaker.failed(breaker.before())
    clock.now += 30

    def probing_request() -> None:
        one_caller()
        probe, page = breaker.before(), breaker.before()  # two calls of one request
        assert breaker.admits(page)  # half-open, but the probe's own request: may retry
        breaker.succeeded(probe)
        breaker.failed(page)  # began after the circuit opened: a current failure

    contextvars.copy_context().run(probing_request)

    assert breaker.state == "open"


def test_each_change_of_state_is_reported() -> None:
    clock = Clock()
    seen: list[str] = []
    breaker = Breaker("https://w", failures=2, cooldown=30, clock=clock, on_change=seen.append)

    for _ in range(2):
        breaker.failed(breaker.before())
    assert seen == ["open"]
    clock.now += 30
    probe = breaker.before()
    assert seen == ["open", "half-open"]  # the probe went: the gauge says so
    breaker.failed(probe)
    assert seen == ["open", "half-open", "open"]
    clock.now += 30
    breaker.succeeded(breaker.before())
    assert seen == ["open", "half-open", "open", "half-open", "closed"]


def test_a_success_from_before_the_last_opening_resets_nothing() -> None:
    clock = Clock()
    breaker = Breaker("https://w.example", failures=2, cooldown=30, clock=clock)
    stale = breaker.before()
    for _ in range(2):
        breaker.failed(breaker.before())
    clock.now += 30
    breaker.succeeded(breaker.before())  # closed again
    breaker.failed(breaker.before())

    breaker.succeeded(stale)  # began before the circuit opened: says nothing about now
    breaker.failed(breaker.before())

    assert breaker.state == "open"  # two current failures in a row


def test_a_failed_probe_opens_the_circuit_for_a_whole_cooldown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    breaker = Breaker("https://w.example", failures=3, cooldown=12.5, clock=clock)
    for _ in range(3):
        breaker.failed(breaker.before())
    clock.now += 12.5
    probe = breaker.before()

    with caplog.at_level("WARNING", logger="widget_proxy.upstream"):
        breaker.failed(probe)

    assert "opened after failed calls from 1 callers in a row; refusing calls for 12.5 s" in (
        caplog.text
    )
    clock.now += 12
    with pytest.raises(CircuitOpen) as caught:
        breaker.before()
    assert caught.value.retry_after == "1"
    clock.now += 0.5
    assert breaker.before().probe is True
