"""Prometheus metrics, one set per app, exposed at `/metrics`.

With several worker processes, `widget-proxy serve` makes a folder for prometheus-client
to keep each process's values in (its `PROMETHEUS_MULTIPROC_DIR`, set before the
workers start) and hands it to each worker's `Metrics(multiprocess_dir=…)`, whose
`/metrics` then adds them up across workers.
"""

from __future__ import annotations

import asyncio
import copy
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
CIRCUIT_STATES: Final = {"closed": 0, "half-open": 1, "open": 2}
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST


class Incrementable(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class Observable(Protocol):
    def observe(self, amount: float) -> None: ...


class Tally:
    """Counter increments of the page path, added up as plain numbers and handed to
    prometheus-client in bulk: when anything reads the metrics, and at the end of the
    event loop's turn otherwise.

    A warm view increments three counters; each prometheus `inc` takes a lock and a
    few checks, a dozen times what adding to a dictionary costs. Its duration is
    tallied too (`histogram`: bucket counts and a sum, added to prometheus-client's
    histogram when anything reads the metrics).

    With several workers (`immediate`), each count goes to prometheus-client at once:
    another worker answers `/metrics` from the shared files, and a count still pending
    here at the end of this turn would be missing from a scrape that a client sends
    as soon as it has its answer (the answer's bytes leave before the turn ends).
    """

    def __init__(self, *, immediate: bool = False) -> None:
        self._pending: dict[Incrementable, int] = {}
        self._soon = False
        self._immediate = immediate
        self._observers: dict[Any, Tallied] = {}  # histogram child → its tally

    def counter(self, child: Incrementable) -> Callable[[], None]:
        """A function that counts one for `child` (a labelled counter)."""
        if self._immediate:
            return child.inc

        def count() -> None:
            pending = self._pending
            pending[child] = pending.get(child, 0) + 1
            if not self._soon:
                self._flush_soon()

        return count

    def histogram(self, child: Any) -> Observable:
        """An `observe` for `child` (a labelled histogram) that counts in its buckets
        here, added to `child` whenever anything reads the metrics (`settle`)."""
        if self._immediate or not _foldable(child):
            return child  # type: ignore[no-any-return]
        observer = self._observers.get(child)
        if observer is None:
            observer = self._observers[child] = Tallied(child, child._upper_bounds)
        return observer

    def _flush_soon(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # counted outside an event loop: nothing to wait for
            self.flush()
            return
        self._soon = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Hand the counts to prometheus-client (at the end of the loop's turn)."""
        self._soon = False
        pending, self._pending = self._pending, {}
        for child, count in pending.items():
            child.inc(count)

    def settle(self) -> None:
        """Hand everything to prometheus-client, the histograms' tallies too: for a read."""
        self.flush()
        for observer in self._observers.values():
            observer.fold()


class Tallied:
    """A histogram child's observations as bucket counts and a sum, plain numbers, until
    `fold` adds them to the child: prometheus-client's `observe` takes two locks and
    walks the buckets in Python, a dozen times what a `bisect` and two additions cost.

    It adds them through the child's own bucket and sum values (`_buckets`, `_sum`:
    prometheus-client's, not its API, which observes one value at a time), as its
    `observe` would have: `tests/ops/test_metrics.py` holds the exposition to the one
    `observe` gives, and `_foldable` falls back to `observe` itself should they change.
    """

    __slots__ = ("_bounds", "_child", "_counts", "_sum")

    def __init__(self, child: Any, bounds: Sequence[float]) -> None:
        self._child = child
        self._bounds = tuple(bounds)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0

    def observe(self, amount: float) -> None:
        # The first bucket whose upper bound is at least `amount`, as prometheus-client's.
        self._counts[bisect_left(self._bounds, amount)] += 1
        self._sum += amount

    def fold(self) -> None:
        counts, self._counts = self._counts, [0] * len(self._bounds)
        total, self._sum = self._sum, 0.0
        if not any(counts):
            return
        self._child._sum.inc(total)
        for bucket, count in zip(self._child._buckets, counts, strict=True):
            if count:
                bucket.inc(count)


def _foldable(child: Any) -> bool:
    """Whether `child` keeps one value per bucket and one sum that `Tallied` can add to."""
    bounds = getattr(child, "_upper_bounds", None)
    buckets = getattr(child, "_buckets", None)
    return (
        isinstance(bounds, list)
        and isinstance(buckets, list)
        and len(buckets) == len(bounds)
        and all(hasattr(value, "inc") for value in [*buckets, getattr(child, "_sum", None)])
    )


class TalliedHistogram:
    """A histogram whose children count as `Tally.histogram` does: `labels(...)` answers
    an `observe` (the request log binds one per route), the rest is the histogram's."""

    def __init__(self, histogram: Histogram, tally: Tally) -> None:
        self.histogram = histogram
        self._tally = tally

    def labels(self, *values: str) -> Observable:
        return self._tally.histogram(self.histogram.labels(*values))


class _Flush:
    """Registered first, so that whoever collects the registry sees the tally's counts."""

    def __init__(self, tally: Tally) -> None:
        self._tally = tally

    def collect(self) -> Iterable[object]:
        self._tally.settle()
        return ()


LABELLED: Final = (
    "requests", "request_seconds", "upstream_calls", "upstream_seconds", "cache", "coalesced",
    "circuit", "degraded", "key_in_use", "cache_nodes", "rate_limited",
)  # fmt: skip


class _Widget:
    """A labelled metric whose first label, `widget`, is given: each `labels(...)` call
    gets the rest (components bind their children once, off the page path)."""

    def __init__(self, metric: Any, widget: str) -> None:
        self._metric = metric
        self._widget = widget

    def labels(self, *values: str) -> Any:
        return self._metric.labels(self._widget, *values)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._metric, name)


class Metrics:
    """`widgets`: every series but the request lines' drops gets a first label, `widget`,
    set by each widget's view of them (`for_widget`), as several widgets in one process
    share one registry (`serve --config`); without it, the series are as one widget's."""

    def __init__(self, *, multiprocess_dir: str | None = None, widgets: bool = False) -> None:
        self._multiprocess_dir = multiprocess_dir
        w = ["widget"] if widgets else []
        self.registry = CollectorRegistry()
        r = self.registry
        self.tally = Tally(immediate=multiprocess_dir is not None)
        r.register(_Flush(self.tally))  # type: ignore[arg-type]  # a collector of nothing
        self.requests = Counter(
            "widget_proxy_requests", "Requests answered, by route and status",
            [*w, "route", "status"], registry=r,
        )  # fmt: skip
        # Observed on every request: tallied like the page path's counters.
        self.request_seconds = TalliedHistogram(Histogram(
            "widget_proxy_request_duration_seconds", "Time to answer a request, by route",
            [*w, "route"], buckets=LATENCY_BUCKETS, registry=r,
        ), self.tally)  # fmt: skip
        self.upstream_calls = Counter(
            "widget_proxy_upstream_calls", "Calls to the vendor, by kind and outcome",
            [*w, "kind", "outcome"], registry=r,
        )  # fmt: skip
        self.upstream_seconds = Histogram(
            "widget_proxy_upstream_duration_seconds", "Time of one vendor call, retries included",
            [*w, "kind"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.cache = Counter(
            "widget_proxy_cache_events", "Cache lookups: hit, miss, or stale (served, refreshing)",
            [*w, "cache", "outcome"], registry=r,
        )  # fmt: skip
        self.coalesced = Counter(
            "widget_proxy_coalesced_waiters", "Callers that joined a call already under way",
            [*w, "cache"], registry=r,
        )  # fmt: skip
        self.circuit = Gauge(
            "widget_proxy_circuit_state", "Circuit per origin: 0 closed, 1 half-open, 2 open",
            [*w, "origin"], registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self.degraded = Gauge(
            "widget_proxy_degraded",
            "1 while a part serves in a degraded mode (cache: Redis unreachable, memory only;"
            " token: a token every visitor shares could not be issued)",
            [*w, "part"], registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self.key_in_use = Gauge(
            "widget_proxy_key_in_use",
            "1 for the vendor key setting used first (a rotation's *_NEXT once it was needed)",
            [*w, "setting"], registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self.cache_nodes = Gauge(
            "widget_proxy_cache_nodes",
            "Redis data nodes by topology (single, sentinel, cluster) and role (master,"
            " replica), counted by /readyz and by a scrape at most every 5 s",
            [*w, "topology", "role"], registry=r, multiprocess_mode="mostrecent",
        )  # fmt: skip
        self.rate_limited = Counter(
            "widget_proxy_rate_limited", "Requests refused by a rate limit, by what was counted",
            [*w, "limit"], registry=r,
        )  # fmt: skip
        self.log_lines_dropped = Counter(
            "widget_proxy_log_lines_dropped",
            "Request lines dropped: their stream did not keep up (a full buffer) or failed",
            registry=r,
        )

    def for_widget(self, name: str) -> Metrics:
        """These metrics as the widget `name` counts them: the same registry, each
        labelled series bound to its `widget` label (with `widgets=True`)."""
        view = copy.copy(self)
        for attr in LABELLED:
            setattr(view, attr, _Widget(getattr(self, attr), name))
        return view

    def exposition(self) -> bytes:
        self.tally.settle()  # (the multiprocess collector reads files, not the registry)
        if self._multiprocess_dir is not None:
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged, path=self._multiprocess_dir)  # type: ignore[no-untyped-call]
            return generate_latest(merged)
        return generate_latest(self.registry)
