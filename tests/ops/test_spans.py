"""A cold and a warm view, traced: the spans exported over OTLP/HTTP to a receiver on
loopback, each step with its timing, the caller's trace honoured, the vendor's calls
carrying it on, and nothing secret or personal in any of it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

from tests.support import EMAIL, FaultyUpstream, LeakScanner, Proxy, token_in
from tests.support.otlp import CLIENT, Span, Traced, named, servers, traced, tree
from widget_proxy.ops.requestlog import log as request_log
from widget_proxy.ops.spans import TraceIds
from widget_proxy.providers.returningai import ReturningAIStandIn

ADMITTED = ["GET /widget", "  admission", "    ip limit", "    identity", "    user limit"]
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


class Lines(logging.Handler):
    """The request lines, as `serve`'s handler would have them (with `TraceIds`)."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.addFilter(TraceIds())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    level = request_log.level
    request_log.setLevel(logging.INFO)
    request_log.addHandler(handler)
    yield handler
    request_log.removeHandler(handler)
    request_log.setLevel(level)


@pytest.fixture
def traced_proxy(
    make_proxy: Callable[..., Proxy], faulty: FaultyUpstream[ReturningAIStandIn]
) -> Iterator[Traced]:
    with traced(make_proxy, WIDGET_BASE_URL=faulty.url) as found:
        yield found


def one(spans: list[Span], name: str) -> Span:
    (found,) = named(spans, name)
    return found


def test_a_cold_and_a_warm_view_show_each_step_with_its_timing(
    traced_proxy: Traced,
    faulty: FaultyUpstream[ReturningAIStandIn],
    leak_scanner: LeakScanner,
    lines: Lines,
) -> None:
    proxy, received = traced_proxy.proxy, traced_proxy.received
    cold = proxy.get("/widget", EMAIL)
    warm = proxy.get("/widget", EMAIL)
    assert cold.status_code == warm.status_code == 200
    cold_root, warm_root = servers(traced_proxy.spans(2))
    cold_trace, warm_trace = received.trace(cold_root.trace_id), received.trace(warm_root.trace_id)

    print("\n".join(tree(cold_trace, cold_root) + tree(warm_trace, warm_root)))
    assert tree(cold_trace, cold_root) == [
        *ADMITTED,
        "  token lookup",
        "  page lookup",
        "  token fetch",
        "    token issue",
        "      upstream signin",
        "        POST",
        "  page fetch",
        "    page download",
        "      upstream page",
        "        GET",
        "  inject",
    ]
    assert tree(warm_trace, warm_root) == [
        *ADMITTED,
        "  token lookup",
        "  page lookup",
        "  inject",
    ]
    # What each step says of itself.
    assert cold_root.attributes["http.route"] == warm_root.attributes["http.route"] == "/widget"
    assert cold_root.attributes["http.response.status_code"] == 200
    assert cold_root.attributes["http.request.method"] == "GET"
    outcome = "widget_proxy.cache.result"
    assert one(cold_trace, "token lookup").attributes[outcome] == "miss"
    assert one(cold_trace, "token fetch").attributes[outcome] == "miss"
    assert one(cold_trace, "page fetch").attributes[outcome] == "miss"
    assert one(cold_trace, "inject").attributes["widget_proxy.inject.rendered"] is True
    signin = one(cold_trace, "upstream signin").attributes
    assert signin["widget_proxy.upstream.attempts"] == 1
    assert signin["widget_proxy.breaker.state"] == "closed"
    assert one(cold_trace, "POST").attributes["http.response.status_code"] == 200
    assert one(warm_trace, "token lookup").attributes[outcome] == "hit"
    assert one(warm_trace, "page lookup").attributes[outcome] == "hit"
    assert one(warm_trace, "inject").attributes["widget_proxy.inject.rendered"] is False
    pseudonym = one(cold_trace, "admission").attributes["enduser.pseudo.id"]
    assert pseudonym == one(warm_trace, "admission").attributes["enduser.pseudo.id"]
    # The timings: every step inside its parent, and the cold view's upstream calls
    # are where its time went.
    for spans_of, root in ((cold_trace, cold_root), (warm_trace, warm_root)):
        by_id = {s.span_id: s for s in spans_of}
        for span in spans_of:
            assert span.end >= span.start > 0
            if span is not root:
                parent = by_id[span.parent_id]
                assert parent.start <= span.start, span.name
                assert span.end <= parent.end, span.name
    assert one(cold_trace, "token fetch").ms > one(cold_trace, "inject").ms
    assert cold_root.resource["service.name"] == "widget-proxy-test"
    # The request lines carry their trace ids.
    assert lines.lines[-2].endswith(f" trace_id={cold_root.trace_id}")
    assert lines.lines[-1].endswith(f" trace_id={warm_root.trace_id}")
    # Nothing secret or personal in anything exported.
    token = token_in(cold.text)
    cookie = proxy.cookie({"email": EMAIL})["cookie"].partition("=")[2]
    for text in received.texts:
        leak_scanner.check("an exported span", text)
        for personal in (EMAIL, token, cookie, "ann", faulty.url):
            assert personal not in text


def test_the_callers_trace_is_honoured_and_carried_to_the_vendor(
    traced_proxy: Traced,
    faulty: FaultyUpstream[ReturningAIStandIn],
) -> None:
    proxy = traced_proxy.proxy
    parent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    response = proxy.get("/widget", EMAIL, headers={"traceparent": parent})
    assert response.status_code == 200
    spans = traced_proxy.spans(1)
    (root,) = servers(spans)
    assert (root.trace_id, root.parent_id) == (CALLER_TRACE, CALLER_SPAN)
    clients = {s.span_id: s for s in spans if s.kind == CLIENT}
    seen = dict(faulty.faults.traceparents)
    for kind in ("signin", "page"):
        _, trace_id, span_id, flags = (seen[kind] or "").split("-")
        assert trace_id == CALLER_TRACE
        assert clients[span_id].trace_id == CALLER_TRACE  # the attempt's own span
        assert flags == "01"


def test_an_unsampled_caller_is_not_traced(
    traced_proxy: Traced,
    faulty: FaultyUpstream[ReturningAIStandIn],
) -> None:
    proxy = traced_proxy.proxy
    unsampled = f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"
    assert proxy.get("/widget", EMAIL, headers={"traceparent": unsampled}).status_code == 200
    assert proxy.get("/healthz").status_code == 200  # sampled: its own trace
    spans = traced_proxy.spans(1)
    assert [s.name for s in servers(spans)] == ["GET /healthz"]
    assert all(s.trace_id != CALLER_TRACE for s in spans)
    # The vendor still gets the caller's trace, unsampled, as W3C says.
    assert all((p or "").startswith(f"00-{CALLER_TRACE}-") for _, p in faulty.faults.traceparents)
    assert all((p or "").endswith("-00") for _, p in faulty.faults.traceparents)


def test_trace_ids_are_added_only_inside_a_span() -> None:
    record = logging.LogRecord("widget_proxy", logging.WARNING, "", 0, "plain %s", ("line",), None)
    assert TraceIds().filter(record)
    assert record.getMessage() == "plain line"
