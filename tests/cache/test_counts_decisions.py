"""The rate count's quick decision (`WindowCounters.throttle`'s integer path) is the exact
one: the same answers, the same syncs, the same counts, whatever happens in between."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import Clock
from widget_proxy.cache.counts import BUCKETS, WindowCounters

WIDTH = 60 / BUCKETS


class Exact(WindowCounters):
    """Every event decided the long way: the part of the oldest slot still inside the
    window, and the holds and early syncs of a shared count."""

    def throttle(self, key: str, limit: int) -> float:
        now = self._clock()
        return self._throttle(key, limit, now, int(now / self._width), self._pending.get(key))


class Store:
    """The other processes: `others` events in every slot of every key, and a store that
    fails when told to."""

    def __init__(self) -> None:
        self.others: dict[int, int] = {}
        self.totals: dict[str, dict[int, int]] = {}
        self.failures = 0

    async def add_counts(
        self, batch: Sequence[tuple[str, dict[int, int]]], *, oldest: int, keep: float
    ) -> list[dict[int, int]] | None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the store is down")
        answer = []
        for key, counts in batch:
            totals = self.totals.setdefault(key, {})
            for slot, n in counts.items():
                totals[slot] = totals.get(slot, 0) + n
            merged = {s: totals.get(s, 0) + self.others.get(s, 0) for s in {*totals, *self.others}}
            answer.append({s: n for s, n in merged.items() if s >= oldest and n})
        return answer


STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("event"), st.sampled_from("abc"), st.integers(1, 12)),
        st.tuples(st.just("events"), st.sampled_from("abc"), st.integers(2, 30)),
        st.tuples(st.just("tick"), st.floats(0, 2 * WIDTH)),
        st.tuples(st.just("sync")),
        st.tuples(st.just("others"), st.integers(0, 6)),
        st.tuples(st.just("fail")),
    ),
    max_size=60,
)


async def _both(steps: list[tuple[Any, ...]], *, shared: bool, eager: bool) -> None:
    clock = Clock(1_000_000.0 - 1_000_000.0 % WIDTH)
    stores = (Store(), Store())
    made = [
        kind(shared=store if shared else None, sync_interval=3600, eager=eager, clock=clock)
        for kind, store in zip((WindowCounters, Exact), stores, strict=True)
    ]
    quick, exact = made

    def event(key: str, limit: int) -> None:
        assert quick.throttle(key, limit) == exact.throttle(key, limit)
        assert syncing(quick) == syncing(exact)  # an early sync asked for by both, or neither

    try:
        for step in steps:
            match step:
                case ("event", key, limit):
                    event(key, limit)
                case ("events", key, limit):
                    for _ in range(limit):
                        event(key, limit)
                case ("tick", seconds):
                    clock.now += seconds
                case ("sync",):
                    await quick.sync()
                    await exact.sync()
                case ("others", n):
                    slot = int(clock.now // WIDTH)
                    for store in stores:
                        store.others[slot] = store.others.get(slot, 0) + n
                case ("fail",):
                    for store in stores:
                        store.failures += 1
            for _ in range(3):  # the early syncs either one started
                await asyncio.sleep(0)
        assert dict(quick._pending) == dict(exact._pending)
        assert quick._view == exact._view
        assert quick._touched == exact._touched
    finally:
        for counters in made:
            await counters.aclose()


def syncing(counters: WindowCounters) -> bool:
    return counters._early is not None and not counters._early.done()


@settings(max_examples=300)
@given(STEPS)
def test_one_process_decides_as_the_exact_count_does(steps: list[tuple[Any, ...]]) -> None:
    asyncio.run(_both(steps, shared=False, eager=True))


@settings(max_examples=300)
@given(STEPS, st.booleans())
def test_a_shared_count_decides_as_the_exact_count_does(
    steps: list[tuple[Any, ...]], eager: bool
) -> None:
    asyncio.run(_both(steps, shared=True, eager=eager))


def test_a_key_is_recent_from_its_first_event_in_a_slot() -> None:
    """The least recently used key is forgotten first, to the slot: a key counted again
    in the slot it was last counted in keeps its place (a page view doesn't reorder the
    keys), one counted in a later slot is the most recent."""
    clock = Clock(1_000_000.0 - 1_000_000.0 % WIDTH)
    counters = WindowCounters(max_keys=2, clock=clock)
    counters.throttle("a", 10)
    counters.throttle("b", 10)
    counters.throttle("a", 10)  # the same slot: a is still older than b

    counters.throttle("c", 10)  # a is forgotten
    assert list(counters._pending) == ["b", "c"]

    clock.now += WIDTH
    counters.throttle("b", 10)  # a later slot: b is the most recent now
    counters.throttle("a", 10)  # c is forgotten
    assert list(counters._pending) == ["b", "a"]
