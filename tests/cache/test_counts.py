"""Rate counts decided in this process and synced through a real Redis (`cache/counts.py`).

Time is a test clock; each "process" is a `WindowCounters` of its own, as in one
worker, sharing a redis-server started for the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import redis

from tests.support import Clock
from tests.support.redis import PrivateRedis, private_redis
from widget_proxy.cache import MemoryStore, TieredStore
from widget_proxy.cache.counts import BUCKETS, WindowCounters, admitted_at_most, retry_after
from widget_proxy.cache.redis import RedisStore, rate_key

pytestmark = pytest.mark.anyio

WIDTH = 60 / BUCKETS


@pytest.fixture
def clock() -> Clock:
    return Clock(1_000_000.0 - 1_000_000.0 % WIDTH)  # at the start of a slot


@pytest.fixture
async def redis_server() -> AsyncIterator[PrivateRedis]:
    with private_redis() as server:
        yield server


_stores: list[TieredStore] = []


def shared_store(server: PrivateRedis, clock: Clock) -> TieredStore:
    redis = RedisStore(server.url, secret="s" * 32, clock=clock)
    store = TieredStore(MemoryStore(100), redis, where=server.url, clock=clock)
    _stores.append(store)
    return store


_running: list[WindowCounters] = []


@pytest.fixture(autouse=True)
async def _stop_every_sync() -> AsyncIterator[None]:
    yield
    while _running:  # the syncs first (an early one may be under way), then the stores
        await _running.pop().aclose()
    while _stores:
        await _stores.pop().aclose()


def process(
    clock: Clock, store: TieredStore | None = None, *, eager: bool = False
) -> WindowCounters:
    # The sync is driven by the tests (`sync()`); the background one never comes round.
    counters = WindowCounters(shared=store, sync_interval=3600, eager=eager, clock=clock)
    _running.append(counters)
    return counters


def admitted(counters: WindowCounters, n: int, limit: int, key: str = "u") -> int:
    return sum(counters.throttle(key, limit) == 0 for _ in range(n))


# --- one process ----------------------------------------------------------------------


async def test_the_limit_per_minute_then_a_wait(clock: Clock) -> None:
    counters = process(clock)

    assert admitted(counters, 3, limit=3) == 3
    wait = counters.throttle("u", 3)

    # All three are in the slot now; it leaves the window a minute and a slot from its
    # start, sliding out over the slot's width: the count is 2 after 60 + 5/3 s.
    assert wait == pytest.approx(60 + WIDTH / 3)
    assert counters.throttle("other", 3) == 0.0  # every key its own count


async def test_after_the_wait_it_is_admitted_and_not_before(clock: Clock) -> None:
    counters = process(clock)
    clock.now += 2.0  # mid-slot
    admitted(counters, 3, limit=3)
    wait = counters.throttle("u", 3)

    clock.now += wait - 0.01
    early = counters.throttle("u", 3)
    clock.now += 0.02
    on_time = counters.throttle("u", 3)

    assert early > 0
    assert on_time == 0.0
    assert retry_after(wait) == str(int(wait) + 1)  # Retry-After is never early


async def test_a_steady_client_gets_the_limit_per_minute(clock: Clock) -> None:
    counters = process(clock)
    allowed = 0
    for _ in range(600):  # 10 minutes, one request a second, limit 30
        allowed += counters.throttle("u", 30) == 0
        clock.now += 1

    # A sliding window of 60-65 s: 30 in the first minute, then 30 per 60-65 s.
    assert 270 <= allowed <= 300


async def test_refused_requests_are_not_counted(clock: Clock) -> None:
    counters = process(clock)
    admitted(counters, 2, limit=2)
    for _ in range(100):
        counters.throttle("u", 2)

    clock.now += 65  # the two admitted have left; the refused never counted

    assert admitted(counters, 2, limit=2) == 2


async def test_keys_are_bounded(clock: Clock) -> None:
    counters = WindowCounters(max_keys=10, clock=clock)
    for n in range(100):
        counters.throttle(f"k{n}", 1)

    assert counters.throttle("k99", 1) > 0  # the newest are still counted
    assert counters.throttle("k0", 1) == 0.0  # the oldest were forgotten


# --- several processes, through Redis -------------------------------------------------


async def test_processes_share_one_count_after_a_sync(
    clock: Clock, redis_server: PrivateRedis
) -> None:
    one, two = shared_store(redis_server, clock), shared_store(redis_server, clock)
    a, b = process(clock, one), process(clock, two)
    before_sync = admitted(a, 4, limit=5) + admitted(b, 4, limit=5)
    await a.sync()  # a: its own 4
    await b.sync()  # b: 4 + 4
    stale = admitted(a, 5, limit=5)  # a's view is one sync old
    await a.sync()  # a: 4 + 4 + 1
    after_sync = admitted(a, 5, limit=5) + admitted(b, 5, limit=5)

    # Between syncs each admits against its own view: 8 of a limit of 5, the overshoot
    # being what the other admitted in one interval; a view one sync old lets one more
    # in (still within that bound). Once synced, both see 9: none more.
    assert before_sync == 8
    assert stale == 1
    assert after_sync == 0


async def test_the_overshoot_is_at_most_what_the_others_admit_in_one_interval(
    clock: Clock, redis_server: PrivateRedis
) -> None:
    stores = [shared_store(redis_server, clock) for _ in range(3)]
    counters = [process(clock, store) for store in stores]
    limit, total = 20, 0
    for _ in range(120):  # two minutes; each process sees one request a second
        for c in counters:
            total += c.throttle("u", limit) == 0
        clock.now += 1
        if clock.now % 1 == 0:  # a sync interval of one second
            for c in counters:
                await c.sync()

    # Each window of ~60 s admits at most the limit plus what the 2 others admitted in
    # one interval (1 each); over two minutes (two windows plus the slot), at most 2x.
    assert limit * 2 - 2 <= total <= (limit + 2) * 2 + limit // 4


async def test_a_busy_key_syncs_early_then_waits_for_the_sync(
    clock: Clock, redis_server: PrivateRedis
) -> None:
    a = process(clock, shared_store(redis_server, clock), eager=True)
    a.throttle("u", 20)
    await a.sync()  # a fresh view: 1 of 20 taken

    quiet = [a.throttle("u", 20) for _ in range(4)]  # 5 of 20 since the sync: no hurry
    await asyncio.sleep(0.05)
    before_quarter = in_redis(redis_server)
    early = [a.throttle("u", 20) for _ in range(5)]  # a quarter of the room: sync soon
    held = a.throttle("u", 20)  # half the room since the last sync: wait for it
    for _ in range(100):  # the early sync, in the background
        if in_redis(redis_server) == 10:
            break
        await asyncio.sleep(0.02)
    after = a.throttle("u", 20)  # synced: the room is counted afresh

    assert quiet == [0.0] * 4
    assert before_quarter == 1
    assert early == [0.0] * 5
    assert held == 1.0  # wait for the sync (Retry-After: 1), not a refusal for the minute
    assert in_redis(redis_server) == 10  # the 1 synced before, and the 9 admitted since
    assert after == 0.0


async def test_an_old_view_is_refreshed_on_a_second_event(
    clock: Clock, redis_server: PrivateRedis
) -> None:
    a = process(clock, shared_store(redis_server, clock), eager=True)

    first = a.throttle("u", 60)  # no view yet: decided as is
    await asyncio.sleep(0.05)
    unsent = in_redis(redis_server)
    second = a.throttle("u", 60)  # a second one on no view: sync it now
    for _ in range(100):
        if in_redis(redis_server) == 2:
            break
        await asyncio.sleep(0.02)

    assert (first, second) == (0.0, 0.0)  # neither waits
    assert unsent == 0
    assert in_redis(redis_server) == 2


def in_redis(server: PrivateRedis, key: str = "u") -> int:
    """Key `key`'s count across every process, as Redis holds it."""
    with redis.Redis.from_url(server.url) as client:
        return sum(int(n) for n in client.hgetall(rate_key(key)).values())


async def test_with_redis_down_each_process_counts_alone_and_loses_nothing(
    clock: Clock, redis_server: PrivateRedis
) -> None:
    store = shared_store(redis_server, clock)
    a = process(clock, store)
    admitted(a, 3, limit=10)
    redis_server.kill()
    await a.sync()  # fails: the counts stay here
    down = admitted(a, 10, limit=10)
    redis_server.start()
    clock.now += 10  # past the tiered store's retry delay (RETRY_AFTER)
    await a.sync()
    fresh = process(clock, shared_store(redis_server, clock))
    fresh.throttle("u", 100)
    await fresh.sync()  # a new process reads what the first one admitted
    seen = admitted(fresh, 100, limit=12)

    assert down == 7  # the local count went on: 3 + 7 = the limit
    assert seen == 12 - 10 - 1  # the 10 admitted while Redis was down reached it later


async def test_the_sync_never_raises(clock: Clock, redis_server: PrivateRedis) -> None:
    store = shared_store(redis_server, clock)
    a = process(clock, store)
    redis_server.kill()
    a.throttle("u", 5)
    await a.sync()
    await a.aclose()  # its last sync fails too, quietly


# (seconds after a slot's start, events tried, admitted, Retry-After of the first refused)
# for one key at a limit of 10: events spread over several slots leave the window slot
# by slot, each sliding out over its 5 s.
SCHEDULE = [
    (0.0, 4, 4, None),
    (7.0, 3, 3, None),
    (20.0, 4, 3, "42"),  # the 4 of 0 s leave over 60-65 s: one is out at 61.25 s
    (61.0, 1, 0, "1"),  # 3.2 of them still in: 0.25 s to go
    (61.25, 2, 1, "2"),
    (70.0, 10, 6, "12"),  # those of 0 s and 7 s are out; those of 20 s leave at 80-85 s
    (84.5, 3, 2, "1"),
]


async def test_events_leave_the_window_slot_by_slot(clock: Clock) -> None:
    counters = process(clock)
    start = clock.now

    for at, tried, allowed, wait in SCHEDULE:
        clock.now = start + at
        waits = [counters.throttle("u", 10) for _ in range(tried)]
        assert sum(w == 0 for w in waits) == allowed, at
        refused = [retry_after(w) for w in waits if w > 0]
        assert (refused[0] if refused else None) == wait, at


class Flaky:
    """A shared store that fails, then records what it is sent and shares nothing back."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.batches: list[tuple[list[tuple[str, dict[int, int]]], int, float]] = []

    async def add_counts(
        self, batch: Sequence[tuple[str, dict[int, int]]], *, oldest: int, keep: float
    ) -> list[dict[int, int]] | None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the store is down")
        self.batches.append((list(batch), oldest, keep))
        return [dict(counts) for _, counts in batch]  # as if no other process counted


async def test_counts_a_failed_sync_could_not_send_are_sent_by_the_next(clock: Clock) -> None:
    store = Flaky(failures=1)
    counters = WindowCounters(shared=store, sync_interval=3600, eager=False, clock=clock)
    _running.append(counters)
    slot = int(clock.now // WIDTH)
    admitted(counters, 3, limit=10)

    await counters.sync()  # fails: the three stay pending here
    clock.now += WIDTH
    admitted(counters, 2, limit=10)
    await counters.sync()

    [(batch, oldest, keep)] = store.batches
    assert batch == [("u", {slot: 3, slot + 1: 2})]
    assert oldest == slot + 1 - BUCKETS
    assert keep == 120  # the shared counts outlive two windows
    assert counters.throttle("u", 10) == 0.0  # 5 + 5 of the view: the 11th is refused
    assert admitted(counters, 5, limit=10) == 4


async def test_a_sync_sends_at_most_100_keys_a_round_trip(clock: Clock) -> None:
    store = Flaky(failures=0)
    counters = WindowCounters(shared=store, sync_interval=3600, clock=clock)
    _running.append(counters)
    for n in range(250):
        counters.throttle(f"u{n}", 10)

    await counters.sync()

    assert [len(batch) for batch, _, _ in store.batches] == [100, 100, 50]
    assert sorted(key for batch, _, _ in store.batches for key, _ in batch) == sorted(
        f"u{n}" for n in range(250)
    )


# --- against a shared store the test controls ------------------------------------------


class Others:
    """A shared store where the other processes counted `others` (slot → events) on every
    key: it adds what it is sent, answers the totals, and can fail or hold a round trip."""

    def __init__(self, others: dict[int, int] | None = None) -> None:
        self.others = others or {}
        self.totals: dict[str, dict[int, int]] = {}
        self.batches: list[list[tuple[str, dict[int, int]]]] = []
        self.failures = 0
        self.hold: asyncio.Event | None = None

    async def add_counts(
        self, batch: Sequence[tuple[str, dict[int, int]]], *, oldest: int, keep: float
    ) -> list[dict[int, int]] | None:
        self.batches.append(list(batch))
        if self.hold is not None:
            await self.hold.wait()
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the store is down")
        answer = []
        for key, counts in batch:
            totals = self.totals.setdefault(key, dict(self.others))
            for slot, n in counts.items():
                totals[slot] = totals.get(slot, 0) + n
            answer.append({slot: n for slot, n in totals.items() if slot >= oldest})
        return answer


def counting(clock: Clock, store: Others, **kw: Any) -> WindowCounters:
    counters = WindowCounters(shared=store, clock=clock, **kw)
    _running.append(counters)
    return counters


async def started(counters: WindowCounters) -> asyncio.Task[None]:
    """A sync, under way: its batch has left (and waits on the store's `hold`)."""
    task = asyncio.ensure_future(counters.sync())
    for _ in range(3):
        await asyncio.sleep(0)
    return task


# (seconds after the sync, admitted of 10 at a limit of 10, then the wait at a limit of 8)
# for a view synced at 0 s holding 3 events of the slot 0-5 s, 4 of 5-10 s, 1 of 10-15 s:
# each leaves the window a minute after its slot, sliding out over the slot's 5 s.
MOVED = [
    (62.5, 3, 3.75),  # half of the first slot still in: 6.5 seen
    (67.5, 7, 7.5),  # the first gone, half of the second in: 3 seen
    (72.5, 9, 57.5 + 10 / 9),  # half of the third in; the 9 just admitted leave last
    (80.0, 10, 60.0 + 3 / 10 * WIDTH),  # all gone
]


@pytest.mark.parametrize(("at", "allowed", "wait"), MOVED)
async def test_a_view_synced_before_the_window_moved(
    clock: Clock, at: float, allowed: int, wait: float
) -> None:
    slot = int(clock.now // WIDTH)
    store = Others({slot: 2, slot + 1: 4, slot + 2: 1})
    counters = counting(clock, store, sync_interval=3600, eager=False)
    start = clock.now
    counters.throttle("u", 10)  # the third of the first slot
    await counters.sync()

    clock.now = start + at

    assert admitted(counters, 10, limit=10) == allowed
    assert counters.throttle("u", 8) == pytest.approx(wait)


async def test_own_counts_of_a_slot_partly_out_of_the_window_still_count(clock: Clock) -> None:
    counters = process(clock)
    start = clock.now
    admitted(counters, 3, limit=10)
    clock.now += WIDTH
    admitted(counters, 4, limit=10)

    clock.now = start + 60 + WIDTH + WIDTH / 2  # the 3 are out, half of the 4 still in

    assert admitted(counters, 10, limit=10) == 8


async def test_counts_since_a_sync_and_the_view_leave_the_window_together(clock: Clock) -> None:
    counters = counting(clock, Others(), sync_interval=3600, eager=False)
    admitted(counters, 3, limit=10)
    await counters.sync()  # the view: the 3
    admitted(counters, 2, limit=10)  # pending: 2 more in the same slot

    # 2 of the 5 must leave: 2/5 of the slot's width after the minute.
    assert counters.throttle("u", 4) == pytest.approx(60 + 2 / 5 * WIDTH)


# (limit, admitted, the first refusal's wait) after a sync whose view holds 1 event: by
# default a busy key is held at half the room its view leaves until the next sync.
@pytest.mark.parametrize(("limit", "allowed", "wait"), [(11, 5, 1.0), (12, 5, 1.0), (13, 6, 1.0)])
async def test_by_default_a_busy_key_waits_for_a_sync_at_half_its_room(
    clock: Clock, limit: int, allowed: int, wait: float
) -> None:
    counters = counting(clock, Others())
    counters.throttle("u", limit)
    await counters.sync()

    waits = [counters.throttle("u", limit) for _ in range(limit)]

    assert waits.count(0.0) == allowed
    assert waits[allowed] == wait


# (sync interval, limit, seconds since the last sync, events then, synced early?)
EARLY = [
    (None, 1000, 1.9, 2, False),  # by default a view is recent for 2 s (two intervals)
    (None, 1000, 2.0, 2, False),
    (None, 1000, 2.1, 2, True),  # older: the key's second event syncs it
    (0.5, 1000, 0.9, 2, False),
    (0.5, 1000, 1.1, 2, True),
    (None, 13, 0.0, 3, False),  # a quarter of the room (12) not yet taken here
    (None, 13, 0.0, 4, True),  # a quarter taken: synced ahead of the interval
]


@pytest.mark.parametrize(("interval", "limit", "age", "events", "early"), EARLY)
async def test_when_a_key_is_synced_ahead_of_the_interval(
    clock: Clock, interval: float | None, limit: int, age: float, events: int, early: bool
) -> None:
    store = Others()
    counters = counting(clock, store, **({} if interval is None else {"sync_interval": interval}))
    counters.throttle("u", limit)
    await counters.sync()
    clock.now += age

    assert admitted(counters, events, limit) == events
    for _ in range(3):
        await asyncio.sleep(0)

    assert len(store.batches) == (2 if early else 1)


async def test_with_the_store_down_a_busy_key_gets_all_its_room(clock: Clock) -> None:
    store = Others()
    counters = counting(clock, store)
    counters.throttle("u", 11)
    await counters.sync()  # answered: the view holds the 1
    store.failures = 1
    counters.throttle("u", 11)
    await counters.sync()  # failed: nothing waits for a sync that can't come

    assert admitted(counters, 11, limit=11) == 9  # 11, less the 2 counted before


async def test_a_failed_sync_is_logged_with_its_cause(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    store = Others()
    store.failures = 1
    counters = counting(clock, store, sync_interval=3600)
    counters.throttle("u", 10)

    with caplog.at_level(logging.DEBUG, logger="widget_proxy.cache"):
        await counters.sync()

    [record] = [r for r in caplog.records if r.name == "widget_proxy.cache"]
    assert record.getMessage() == "rate count sync failed"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ConnectionError)


async def test_a_failed_batch_does_not_stop_the_next(clock: Clock) -> None:
    store = Others()
    store.failures = 1
    counters = counting(clock, store, sync_interval=3600)
    for n in range(150):
        counters.throttle(f"u{n}", 10)

    await counters.sync()
    assert [len(batch) for batch in store.batches] == [100, 50]  # the first failed
    await counters.sync()

    assert [len(batch) for batch in store.batches] == [100, 50, 100]
    assert sorted(store.totals) == sorted(f"u{n}" for n in range(150))


async def test_the_oldest_slot_still_partly_in_the_window_is_sent(clock: Clock) -> None:
    store = Others()
    counters = counting(clock, store, sync_interval=3600, eager=False)
    slot = int(clock.now // WIDTH)
    admitted(counters, 3, limit=10)
    clock.now += 60  # the slot leaves the window over the next 5 s

    await counters.sync()

    assert store.batches == [[("u", {slot: 3})]]


async def test_the_least_recently_used_key_is_forgotten(clock: Clock) -> None:
    counters = WindowCounters(max_keys=2, clock=clock)
    steps = [("a", True), ("b", True), ("a", False), ("c", True), ("b", True), ("c", False)]

    # b was least recently used when c came; then a, when b came back.
    assert [(key, counters.throttle(key, 1) == 0) for key, _ in steps] == steps
    assert counters.throttle("a", 1) == 0


async def test_a_forgotten_key_forgets_its_shared_view_too(clock: Clock) -> None:
    slot = int(clock.now // WIDTH)
    counters = counting(clock, Others({slot: 2}), max_keys=1)
    assert counters.throttle("a", 3) == 0
    await counters.sync()  # the view: 3, a's limit
    assert counters.throttle("b", 3) == 0  # a is forgotten

    # a starts afresh: its old view (3 of 3) counts no more; its second event waits for
    # a sync (half of a limit of 3), as any key's does.
    assert [counters.throttle("a", 3) for _ in range(2)] == [0.0, 1.0]


async def test_a_forgotten_key_forgets_how_recent_its_view_was(clock: Clock) -> None:
    store = Others()
    counters = counting(clock, store, max_keys=1)
    counters.throttle("a", 100)
    await counters.sync()  # a's view: recent for two intervals
    counters.throttle("b", 100)  # a is forgotten

    assert [counters.throttle("a", 100) for _ in range(2)] == [0.0, 0.0]
    for _ in range(3):
        await asyncio.sleep(0)
    assert len(store.batches) == 2  # a has no view: its second event synced it early


async def test_keys_forgotten_between_two_syncs_cost_the_sync_nothing(clock: Clock) -> None:
    store = Others()
    counters = counting(clock, store, max_keys=10, sync_interval=3600, eager=False)
    for n in range(1000):  # 1,000 clients in one interval: the last 10 are kept
        counters.throttle(f"ip{n}", 10)

    await counters.sync()

    assert [sorted(key for key, _ in batch) for batch in store.batches] == [
        sorted(f"ip{n}" for n in range(990, 1000))
    ]


async def test_a_key_forgotten_before_its_sync_is_not_sent(clock: Clock) -> None:
    store = Others()
    counters = counting(clock, store, max_keys=1, sync_interval=3600, eager=False)
    slot = int(clock.now // WIDTH)
    counters.throttle("a", 10)
    counters.throttle("b", 10)  # a is forgotten, counts and all: nothing to send or keep

    await counters.sync()

    assert store.batches == [[("b", {slot: 1})]]


async def test_a_sync_answered_while_the_keys_are_full_remembers_no_more(clock: Clock) -> None:
    slot = int(clock.now // WIDTH)
    store = Others({slot: 5})
    counters = counting(clock, store, max_keys=1, sync_interval=3600, eager=False)
    counters.throttle("a", 6)
    store.hold = asyncio.Event()
    syncing = await started(counters)
    counters.throttle("b", 6)  # the one key this process may hold, while a's batch travels
    store.hold.set()
    await syncing

    assert counters.throttle("a", 6) == 0.0  # a's answer (6: its limit) was not kept


async def test_the_background_sync_sends_what_was_counted(clock: Clock) -> None:
    store = Others()
    counters = counting(clock, store, sync_interval=0)
    slot = int(clock.now // WIDTH)
    counters.throttle("u", 10)

    for _ in range(5):
        await asyncio.sleep(0)

    assert store.batches == [[("u", {slot: 1})]]


async def test_a_key_used_after_its_sync_is_the_most_recently_used(clock: Clock) -> None:
    counters = counting(clock, Others(), max_keys=2, sync_interval=3600, eager=False)
    counters.throttle("a", 10)
    await counters.sync()  # a's counts are in its view now, none pending
    assert counters.throttle("b", 1) == 0.0
    assert counters.throttle("a", 10) == 0.0  # a, used again: b is the least recently used

    assert counters.throttle("c", 10) == 0.0  # b is forgotten
    assert counters.throttle("b", 1) == 0.0


# --- in flight, and what an outage leaves behind -----------------------------------------


async def test_counts_on_their_way_to_the_store_still_count_here(clock: Clock) -> None:
    store = Others()
    counters = counting(clock, store, sync_interval=3600, eager=False)
    admitted(counters, 6, limit=10)
    store.hold = asyncio.Event()
    syncing = await started(counters)  # the 6 travel: no answer yet

    meanwhile = admitted(counters, 10, limit=10)
    store.hold.set()
    await syncing
    after = admitted(counters, 10, limit=10)  # the view: 10; nothing pending counted twice

    assert meanwhile == 4
    assert after == 0
    assert sum(store.totals["u"].values()) == 6  # the 4 wait for the next sync


# (the batch on its way fails?, what the next sync sends of the slot it held and the next)
TRAVELS = [(False, 1, 2), (True, 3 + 1, 2)]  # answered: only what came after; failed: all


@pytest.mark.parametrize(("fails", "held_slot", "next_slot"), TRAVELS)
async def test_what_is_admitted_while_a_batch_travels_is_sent_by_the_next_sync(
    clock: Clock, fails: bool, held_slot: int, next_slot: int
) -> None:
    store = Others()
    counters = counting(clock, store, sync_interval=3600, eager=False)
    slot = int(clock.now // WIDTH)
    admitted(counters, 3, limit=10)
    store.hold, store.failures = asyncio.Event(), int(fails)
    syncing = await started(counters)
    admitted(counters, 1, limit=10)  # the same slot as the 3 on their way
    clock.now += WIDTH
    admitted(counters, 2, limit=10)  # the next one
    store.hold.set()
    await syncing
    store.hold = None

    await counters.sync()

    assert store.batches == [[("u", {slot: 3})], [("u", {slot: held_slot, slot + 1: next_slot})]]
    assert admitted(counters, 10, limit=10) == 4  # 6 in the view, none pending


# (limit, processes, requests a second to each, interval, round trip, the bound): the
# limit, plus what each other process admits in 2 intervals and 3 round trips, plus one
# (a paced client's requests in any span of that length), each at most the limit.
BOUNDS = [
    (20, 1, 20.0, 0.5, 0.3, 20),  # alone: exact, however far Redis is
    (60, 2, 10.0, 0.5, 0.05, 60 + 12),  # 10 x 1.15 s = 11.5
    (60, 3, 20.0, 1.0, 0.1, 60 + 2 * 47),  # 20 x 2.3 s = 46
    (20, 3, 1000.0, 1.0, 0.0, 60),  # as fast as they answer: each other one, the limit
]


@pytest.mark.parametrize(("limit", "processes", "rate", "interval", "round_trip", "most"), BOUNDS)
async def test_the_bound_on_what_processes_admit_together(
    limit: int, processes: int, rate: float, interval: float, round_trip: float, most: int
) -> None:
    got = admitted_at_most(
        limit, processes=processes, rate=rate, interval=interval, round_trip=round_trip
    )
    assert got == most


async def test_an_old_view_still_holds_a_busy_key_at_half_its_room(clock: Clock) -> None:
    store = Others()
    counters = counting(clock, store, sync_interval=1)
    counters.throttle("u", 21)
    await counters.sync()  # the view: 1 of 21
    clock.now += 10  # the view is old now; its refresh won't answer in time
    store.hold = asyncio.Event()

    waits = [counters.throttle("u", 21) for _ in range(20)]

    assert waits.count(0.0) == 10  # half of the 20 the view leaves; then wait for the sync
    assert waits[10:] == [1.0] * 10
    store.hold.set()


async def test_a_key_forgotten_while_a_sync_is_under_way_is_not_sent(clock: Clock) -> None:
    store = Others()
    counters = counting(clock, store, max_keys=150, sync_interval=3600, eager=False)
    for n in range(150):
        counters.throttle(f"u{n}", 10)
    store.hold = asyncio.Event()
    syncing = await started(counters)  # the first 100 keys travel
    for n in range(150, 210):
        counters.throttle(f"u{n}", 10)  # 60 more: u0-u59 are forgotten
    store.hold.set()
    await syncing

    first, second = store.batches
    forgotten = {f"u{n}" for n in range(60)}
    rest = {f"u{n}" for n in range(150)} - {key for key, _ in first}
    assert sorted(key for key, _ in second) == sorted(rest - forgotten)


class Recording:
    """A store in front of another that notes, at each call, how often `ticker` ran."""

    def __init__(self, store: TieredStore, ticker: list[int]) -> None:
        self.store, self.ticker = store, ticker
        self.calls: list[tuple[int, list[str]]] = []

    async def add_counts(
        self, batch: Sequence[tuple[str, dict[int, int]]], *, oldest: int, keep: float
    ) -> list[dict[int, int]] | None:
        self.calls.append((self.ticker[0], [key for key, _ in batch]))
        return await self.store.add_counts(batch, oldest=oldest, keep=keep)


async def tick(ticks: list[int]) -> None:
    while True:
        ticks[0] += 1
        await asyncio.sleep(0)


async def test_through_an_outage_the_keys_kept_stay_bounded(
    clock: Clock, redis_server: PrivateRedis
) -> None:
    store = Recording(shared_store(redis_server, clock), [0])
    counters = WindowCounters(shared=store, sync_interval=3600, max_keys=100, clock=clock)
    _running.append(counters)
    redis_server.kill()
    for round_ in range(30):  # 3,000 client addresses, 100 new ones between two syncs
        for n in range(100):
            counters.throttle(f"ip{round_}.{n}", 10)
        await counters.sync()  # fails: the store is down (it says so at once)
    store.calls.clear()
    redis_server.start()
    clock.now += 10  # past the tiered store's retry delay

    await counters.sync()

    with redis.Redis.from_url(redis_server.url) as client:
        in_redis = len(client.keys("*rate*"))
    assert sorted(key for _, keys in store.calls for key in keys) == sorted(
        f"ip29.{n}" for n in range(100)
    )  # the 100 kept: the last used; the others were forgotten, and not sent
    assert in_redis == 100


async def test_a_sync_lets_page_views_in_between_its_batches(
    clock: Clock, redis_server: PrivateRedis
) -> None:
    ticks = [0]
    store = Recording(shared_store(redis_server, clock), ticks)
    counters = WindowCounters(shared=store, sync_interval=3600, max_keys=1000, clock=clock)
    _running.append(counters)
    redis_server.kill()
    for n in range(1000):
        counters.throttle(f"ip{n}", 10)
    await counters.sync()  # the store learns that Redis is down: it fails at once now
    store.calls.clear()
    ticker = asyncio.ensure_future(tick(ticks))
    await asyncio.sleep(0)

    await counters.sync()

    ticker.cancel()
    seen = [at for at, _ in store.calls]
    assert len(seen) == 10  # all 1,000 keys are tried again, 100 at a time
    assert all(a < b for a, b in itertools.pairwise(seen))  # the ticker ran between


class Swallowing:
    """A store whose first call, like some client libraries, turns a cancel into a
    failed call; later calls answer at once, with nothing shared."""

    def __init__(self) -> None:
        self.calls = 0
        self.called = asyncio.Event()

    async def add_counts(
        self, batch: Sequence[tuple[str, dict[int, int]]], *, oldest: int, keep: float
    ) -> list[dict[int, int]] | None:
        self.calls += 1
        self.called.set()
        if self.calls == 1:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
        return None


async def test_closing_ends_the_background_sync_even_if_a_cancel_is_swallowed(
    clock: Clock,
) -> None:
    store = Swallowing()
    counters = WindowCounters(shared=store, sync_interval=0, clock=clock)
    counters.throttle("u", 10)  # starts the background sync, which waits in the store
    await store.called.wait()

    # Without the end of the loop in sight, this would wait for ever (the test's timeout).
    await asyncio.wait_for(counters.aclose(), timeout=10)

    assert store.calls == 2  # the call cancelled, then the last sync; no more
