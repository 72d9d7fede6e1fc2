"""One behavioural suite, run against every store: memory, Redis, and memory over Redis."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable

import pytest

from widget_proxy.cache import MemoryStore, RedisStore, Store, TieredStore, TokenEntry
from widget_proxy.cache.pages import PageEntry
from widget_proxy.delivery.inject import SplitPage
from tests.redis_server import forget, require_redis

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def memory(clock: Clock, prefix: str) -> Store:
    return MemoryStore(100, clock=clock)


def shared(clock: Clock, prefix: str) -> Store:
    return RedisStore(require_redis(), prefix=prefix, clock=clock)


def tiered(clock: Clock, prefix: str) -> Store:
    url = require_redis()
    return TieredStore(
        MemoryStore(100, clock=clock), RedisStore(url, prefix=prefix, clock=clock), where=url
    )


@pytest.fixture(params=[memory, shared, tiered])
async def store(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[Store]:
    make: Callable[[Clock, str], Store] = request.param
    prefix = f"wp-test-{secrets.token_hex(4)}:"
    store = make(clock, prefix)
    yield store
    await store.aclose()
    if make is not memory:
        forget(require_redis(), prefix)


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_set_then_get(store: Store, clock: Clock) -> None:
    entry = TokenEntry("tok", clock.now + 30, clock.now)

    await store.set("k", entry)

    assert await store.get("k", TokenEntry) == entry
    assert await store.get("k", TokenEntry, local=False) == entry
    assert await store.get("other", TokenEntry) is None


async def test_pages_survive_the_round_trip(store: Store, clock: Clock) -> None:
    page = SplitPage("<html>h\u00e9ad\n".encode(), b"\ntail</html>")
    entry = PageEntry(page, '"etag"', None, clock.now + 60, clock.now + 660)

    await store.set("p", entry)

    assert await store.get("p", PageEntry, local=False) == entry


async def test_entries_die_at_their_expiry(store: Store, clock: Clock) -> None:
    await store.set("k", TokenEntry("tok", clock.now + 30, clock.now))

    clock.now += 31

    assert await store.get("k", TokenEntry) is None


async def test_an_entry_already_dead_is_not_kept(store: Store, clock: Clock) -> None:
    await store.set("k", TokenEntry("old", clock.now + 30, clock.now))
    await store.set("k", TokenEntry("dead", clock.now - 1, clock.now))

    assert await store.get("k", TokenEntry) is None


async def test_delete(store: Store, clock: Clock) -> None:
    await store.set("k", TokenEntry("tok", clock.now + 30, clock.now))

    await store.delete("k")

    assert await store.get("k", TokenEntry) is None


async def test_a_lock_has_one_owner_at_a_time(store: Store) -> None:
    owner = await store.acquire("lock", lease=10)

    assert owner is not None
    assert await store.acquire("lock", lease=10) is None
    await store.release("lock", "not-the-owner")
    assert await store.acquire("lock", lease=10) is None
    await store.release("lock", owner)
    again = await store.acquire("lock", lease=10)
    assert again is not None
    await store.release("lock", again)


async def test_ping(store: Store) -> None:
    await store.ping()


async def test_memory_store_evicts_the_least_recently_used(clock: Clock) -> None:
    store = MemoryStore(3, clock=clock)
    for name in "abc":
        await store.set(name, TokenEntry(name, clock.now + 30, clock.now))
    await store.get("a", TokenEntry)  # a is now the most recently used

    await store.set("d", TokenEntry("d", clock.now + 30, clock.now))

    assert len(store) == 3
    assert await store.get("b", TokenEntry) is None
    assert [await store.get(n, TokenEntry) is not None for n in "acd"] == [True] * 3


async def test_memory_lock_lease_runs_out(clock: Clock) -> None:
    store = MemoryStore(3, clock=clock)
    assert await store.acquire("lock", lease=5) is not None

    clock.now += 6

    assert await store.acquire("lock", lease=5) is not None


async def test_redis_lock_lease_runs_out() -> None:
    import anyio

    store = RedisStore(require_redis(), prefix=f"wp-test-{secrets.token_hex(4)}:")
    assert await store.acquire("lock", lease=0.05) is not None

    await anyio.sleep(0.1)

    assert await store.acquire("lock", lease=0.05) is not None
    await store.aclose()


async def test_a_damaged_redis_entry_is_a_miss(clock: Clock) -> None:
    prefix = f"wp-test-{secrets.token_hex(4)}:"
    store = RedisStore(require_redis(), prefix=prefix, clock=clock)
    await store.set("p", TokenEntry("not a page", clock.now + 30, clock.now))

    assert await store.get("p", PageEntry) is None
    await store.aclose()
    forget(require_redis(), prefix)


async def test_throttle_allows_the_limit_then_says_how_long_to_wait(store: Store) -> None:
    waits = [await store.throttle("user", limit=3, period=60) for _ in range(4)]

    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 19 < waits[3] <= 20  # one more every 60 / 3 seconds
    assert await store.throttle("other-user", limit=3, period=60) == 0.0


async def test_memory_throttle_refills_with_time(clock: Clock) -> None:
    store = MemoryStore(10, clock=clock)
    for _ in range(3):
        await store.throttle("k", limit=3, period=60)
    assert await store.throttle("k", limit=3, period=60) > 0

    clock.now += 20

    assert await store.throttle("k", limit=3, period=60) == 0.0
    assert await store.throttle("k", limit=3, period=60) > 0
