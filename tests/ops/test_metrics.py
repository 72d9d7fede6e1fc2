"""The page path's counters (`ops.metrics.Tally`): counted as plain numbers, never lost
or late for whoever reads the metrics."""

from __future__ import annotations

import asyncio

from widget_proxy.ops.metrics import Metrics


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


def test_the_exposition_shows_every_count() -> None:
    metrics = Metrics()
    count = metrics.tally.counter(metrics.requests.labels("/widget", 200))

    async def run() -> bytes:
        for _ in range(5):
            count()
        return metrics.exposition()

    assert b'widget_proxy_requests_total{route="/widget",status="200"} 5.0' in asyncio.run(run())
