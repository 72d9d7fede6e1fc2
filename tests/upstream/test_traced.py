"""The vendor calls' spans: each attempt a client span carrying its own `traceparent`,
the call's attempts and the breaker's state, a failure by its code and never its
message."""

from __future__ import annotations

from collections.abc import Callable

from tests.support import EMAIL, FaultyUpstream, Proxy, Respond
from tests.support.otlp import CLIENT, named, traced
from widget_proxy.providers.returningai import ReturningAIStandIn


def test_each_attempt_is_a_span_and_the_failure_says_only_its_code(
    make_proxy: Callable[..., Proxy], faulty: FaultyUpstream[ReturningAIStandIn]
) -> None:
    faulty.faults.active["signin"] = Respond(503, b"down: key wp-in-the-body")
    settings = {"UPSTREAM_RETRIES": "2", "BREAKER_FAILURES": "1"}
    with traced(make_proxy, WIDGET_BASE_URL=faulty.url, **settings) as run:
        assert run.proxy.get("/widget", EMAIL).status_code == 503
        spans = run.spans(1)
    (call,) = named(spans, "upstream signin")
    assert call.attributes["widget_proxy.upstream.attempts"] == 3
    assert call.attributes["widget_proxy.breaker.state"] == "closed"
    assert call.attributes["widget_proxy.breaker.state_after"] == "open"  # this call opened it
    assert call.attributes["error.type"] == "upstream_busy"
    attempts = [s for s in spans if s.kind == CLIENT and s.parent_id == call.span_id]
    assert [s.attributes["http.response.status_code"] for s in attempts] == [503] * 3
    assert [s.attributes["server.address"] for s in attempts] == ["127.0.0.1"] * 3
    sent = [p for kind, p in faulty.faults.traceparents if kind == "signin"]
    assert [p.split("-")[2] if p else None for p in sent] == [s.span_id for s in attempts]
    text = "\n".join(run.received.texts)
    assert "wp-in-the-body" not in text
    assert "503" in text  # (the scan reads the right text)
    assert "answered" not in text  # no error detail: "signin answered 503 (…)"
    assert "after 3 attempts" not in text
