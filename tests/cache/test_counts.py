"""Rate counts decided in this process and synced through a real Redis (`cache/counts.py`).

Time is a test clock; each "process" is a `WindowCounters` of its own, as in one
worker, sharing a redis-server started for the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
import redis

from tests.support import Clock
from tests.support.redis import PrivateRedis, private_redis
from widget_proxy.cache import MemoryStore, TieredStore
from widget_proxy.cache.counts import BUCKETS, WindowCounters, retry_after
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
