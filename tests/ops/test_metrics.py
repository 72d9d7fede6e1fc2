"""The page path's counters (`ops.metrics.Tally`): counted as plain numbers, never lost
or late for whoever reads the metrics; what a few requests through the proxy count."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import EMAIL, Proxy
from tests.support.metrics import at_once, samples, value
from widget_proxy.ops.metrics import Metrics
from widget_proxy.providers.returningai import ReturningAIStandIn


def hits(metrics: Metrics) -> float | None:
    labels = {"cache": "token", "outcome": "hit"}
    return metrics.registry.get_sample_value("widget_proxy_cache_events_total", labels)


def test_outside_an_event_loop_a_count_is_there_at_once() -> None:
    metrics = Metrics()
    count = metrics.tally.counter(metrics.cache.labels("token", "hit"))

    count()
    count()

    assert hits(metrics) == 2


def test_in_an_event_loop_counts_reach_prometheus_by_the_end_of_the_turn() -> None:
    metrics = Metrics()
    child = metrics.cache.labels("token", "hit")
    count = metrics.tally.counter(child)

    async def run() -> tuple[float, float | None, float]:
        for _ in range(3):
            count()
        pending = child._value.get()  # prometheus-client's own value: not yet added to
        read = hits(metrics)  # whoever collects the registry gets them all the same
        count()
        await asyncio.sleep(0)  # the turn ends
        return pending, read, child._value.get()

    pending, read, after = asyncio.run(run())

    assert pending == 0  # three counts were one dictionary entry, not three locked incs
    assert read == 3
    assert after == 4


def test_with_several_workers_a_count_reaches_prometheus_before_the_turn_ends(
    tmp_path: Path,
) -> None:
    # Another worker answers /metrics from the shared files: a count pending here until
    # the turn ends could miss a scrape sent as soon as this answer arrived.
    metrics = Metrics(multiprocess_dir=str(tmp_path))
    child = metrics.cache.labels("token", "hit")
    count = metrics.tally.counter(child)

    async def run() -> float:
        count()
        return child._value.get()  # within the turn: nothing has flushed

    assert asyncio.run(run()) == 1


def test_the_exposition_shows_every_count() -> None:
    metrics = Metrics()
    count = metrics.tally.counter(metrics.requests.labels("/widget", 200))

    async def run() -> bytes:
        for _ in range(5):
            count()
        return metrics.exposition()

    assert b'widget_proxy_requests_total{route="/widget",status="200"} 5.0' in asyncio.run(run())


# --- the request-duration histogram, tallied like the counters --------------------------

# On a bound, between two, below the first and past the last (+Inf).
DURATIONS = [0.0, 0.0004, 0.001, 0.0011, 0.0025, 0.3, 0.5, 1.0, 7.5, 10.0, 11.0, 99.0] * 3


def durations(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = samples(text)
    return {k: v for k, v in found.items() if "request_duration" in k[0]}


def test_tallied_durations_read_as_prometheus_clients_own_observations() -> None:
    metrics = Metrics()
    plain = Metrics()  # the histogram as prometheus-client keeps it, observed one by one
    tallied = metrics.request_seconds.labels("/widget")

    for seconds in DURATIONS:
        tallied.observe(seconds)
        plain.request_seconds.histogram.labels("/widget").observe(seconds)

    got = durations(metrics.exposition().decode())
    expected = durations(plain.exposition().decode())
    assert got.keys() == expected.keys()
    assert len(got) == 13 + 1 + 3  # 13 bounds, +Inf, count, sum and created
    for key, number in expected.items():
        if key[0].endswith("_created"):
            continue
        assert got[key] == pytest.approx(number), key


def test_a_duration_reaches_prometheus_client_when_the_metrics_are_read_only() -> None:
    metrics = Metrics()
    observe = metrics.request_seconds.labels("/widget")
    child = metrics.request_seconds.histogram.labels("/widget")

    async def run() -> tuple[float, float | None]:
        for _ in range(3):
            observe.observe(0.002)
        metrics.tally.counter(metrics.cache.labels("token", "hit"))()
        await asyncio.sleep(0)  # the turn ends: the counters' tally goes, not this one
        pending = child._sum.get()  # prometheus-client's own value: not yet added to
        read = metrics.registry.get_sample_value(  # whoever collects gets them all the same
            "widget_proxy_request_duration_seconds_count", {"route": "/widget"}
        )
        return pending, read

    pending, read = asyncio.run(run())

    assert pending == 0  # three observations were three additions, not six locked ones
    assert read == 3
    assert metrics.request_seconds.labels("/widget") is observe  # one tally per child


def test_with_several_workers_a_duration_reaches_prometheus_at_once(tmp_path: Path) -> None:
    metrics = Metrics(multiprocess_dir=str(tmp_path))

    metrics.request_seconds.labels("/widget").observe(0.002)

    child = metrics.request_seconds.histogram.labels("/widget")
    assert child._sum.get() == pytest.approx(0.002)


def test_a_histogram_it_cant_fold_into_is_observed_as_it_is() -> None:
    class Observed:
        def __init__(self) -> None:
            self.seen: list[float] = []

        def observe(self, amount: float) -> None:
            self.seen.append(amount)

    child = Observed()
    observe = Metrics().tally.histogram(child)
    observe.observe(0.5)

    assert observe is child
    assert child.seen == [0.5]


def test_metrics_after_a_few_requests(make_proxy: Callable[..., Proxy]) -> None:
    proxy = make_proxy(RATE_LIMIT_PER_MINUTE="3")
    for _ in range(4):
        proxy.get("/widget", EMAIL)  # 1 miss, 2 hits, then rate limited
    proxy.get("/widget?color=purple", EMAIL)  # refused before it is counted

    found = samples(proxy.client.get("/metrics").text)

    assert value(found, "widget_proxy_requests_total", route="/widget", status="200") == 3
    assert value(found, "widget_proxy_requests_total", route="/widget", status="429") == 1
    assert value(found, "widget_proxy_requests_total", route="/widget", status="400") == 1
    assert value(found, "widget_proxy_request_duration_seconds_count", route="/widget") == 5
    assert value(found, "widget_proxy_upstream_calls_total", kind="signin", outcome="ok") == 1
    assert value(found, "widget_proxy_upstream_calls_total", kind="page", outcome="ok") == 1
    assert value(found, "widget_proxy_upstream_duration_seconds_count", kind="signin") == 1
    assert value(found, "widget_proxy_cache_events_total", cache="token", outcome="hit") == 2
    assert value(found, "widget_proxy_cache_events_total", cache="token", outcome="miss") == 1
    assert value(found, "widget_proxy_cache_events_total", cache="page", outcome="miss") == 1
    assert value(found, "widget_proxy_rate_limited_total", limit="user") == 1
    assert value(found, "widget_proxy_circuit_state", origin=proxy.settings.vendor.base_url) == 0


def test_coalesced_waiters_are_counted(proxy: Proxy, vendor: ReturningAIStandIn) -> None:
    vendor.signin_delay = vendor.page_delay = 0.2

    statuses = at_once(proxy.client, "/widget", [proxy.cookie({"email": EMAIL})] * 20)
    found = samples(proxy.client.get("/metrics").text)

    assert value(found, "widget_proxy_coalesced_waiters_total", cache="token") >= 10
    assert vendor.calls["signin"] == 1
    assert statuses == [200] * 20


def test_widgets_share_one_registry_each_series_labelled_by_widget() -> None:
    metrics = Metrics(widgets=True)
    rewards, support = metrics.for_widget("rewards"), metrics.for_widget("support")
    rewards.requests.labels("/widget", "200").inc()
    support.requests.labels("/widget", "200").inc(2)
    support.rate_limited.labels("user").inc()
    metrics.log_lines_dropped.inc()  # the one request log's: no widget

    found = samples(metrics.exposition().decode())

    requests = "widget_proxy_requests_total"
    assert value(found, requests, route="/widget", status="200", widget="rewards") == 1
    assert value(found, requests, route="/widget", status="200", widget="support") == 2
    assert value(found, "widget_proxy_rate_limited_total", limit="user", widget="support") == 1
    assert value(found, "widget_proxy_log_lines_dropped_total") == 1
    # One widget alone: the series as they always were, no widget label.
    assert "widget=" not in Metrics().exposition().decode()
