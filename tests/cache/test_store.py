"""One behavioural suite, run against every store: memory, Redis, and memory over Redis."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import anyio
import pytest
import redis

from tests.support import Clock
from tests.support.redis import (
    forget,
    private_cluster,
    private_redis,
    private_sentinel,
    require_redis,
)
from widget_proxy.cache import (
    MemoryStore,
    RedisStore,
    SharedStore,
    Store,
    TieredStore,
    TokenEntry,
)
from widget_proxy.cache.pages import PageEntry
from widget_proxy.delivery.inject import SplitPage

pytestmark = pytest.mark.anyio
SECRET = "s" * 32  # keys the MACs of values in Redis


def memory(url: str, clock: Clock, prefix: str) -> Store:
    return MemoryStore(100, clock=clock)


def shared(url: str, clock: Clock, prefix: str) -> SharedStore:
    """Redis alone: a `SharedStore`, which holds nothing in this process (no `peek`)."""
    return RedisStore(url, secret=SECRET, prefix=prefix, clock=clock)


def tiered(url: str, clock: Clock, prefix: str) -> Store:
    return TieredStore(
        MemoryStore(100, clock=clock),
        RedisStore(url, secret=SECRET, prefix=prefix, clock=clock),
        where=url,
    )


# What each store runs on: `memory` on nothing, the others on one server (REDIS_URL),
# the master of a Sentinel of their own or a Cluster of their own (module-scoped: the
# servers are shared by this module's tests, each under a prefix of its own). Over
# Sentinel and Cluster, RedisStore alone: a TieredStore would hide a failing Redis.
STORES = {
    "memory": (memory, None),
    "shared": (shared, "single"),
    "tiered": (tiered, "single"),
    "sentinel": (shared, "sentinel_url"),
    "cluster": (shared, "cluster_url"),
}


@pytest.fixture(scope="module")
def sentinel_url() -> Iterator[str]:
    with private_sentinel() as found:
        yield found.url


@pytest.fixture(scope="module")
def cluster_url() -> Iterator[str]:
    with private_cluster() as found:
        yield found.url


@asynccontextmanager
async def opened(
    request: pytest.FixtureRequest, name: str, clock: Clock
) -> AsyncIterator[SharedStore]:
    make, on = STORES[name]
    url = "" if on is None else require_redis() if on == "single" else request.getfixturevalue(on)
    prefix = f"wp-test-{secrets.token_hex(4)}:"
    store = make(url, clock, prefix)
    try:
        yield store
    finally:
        await store.aclose()
        if on == "single":  # the servers of their own go at the module's end, keys and all
            forget(url, prefix)


# The stores on topologies of their own start redis-server processes: slow.
@pytest.fixture(
    params=[
        pytest.param(name, marks=pytest.mark.slow) if name in ("sentinel", "cluster") else name
        for name in STORES
    ]
)
async def store(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[SharedStore]:
    async with opened(request, request.param, clock) as opened_store:
        yield opened_store


@pytest.fixture(params=["memory", "tiered"])
async def local_store(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[Store]:
    """The stores that keep a copy in this process: only they have `peek`."""
    async with opened(request, request.param, clock) as opened_store:
        yield opened_store  # type: ignore[misc]


async def test_set_then_get(store: SharedStore, clock: Clock) -> None:
    entry = TokenEntry("tok", clock.now + 30, clock.now)

    await store.set("k", entry)

    assert await store.get("k", TokenEntry) == entry
    assert await store.get("k", TokenEntry, local=False) == entry
    assert await store.get("other", TokenEntry) is None


async def test_peek_sees_what_this_process_set(local_store: Store, clock: Clock) -> None:
    # Not run on RedisStore alone: it holds nothing in this process, so it has no peek.
    entry = TokenEntry("tok", clock.now + 30, clock.now)

    await local_store.set("k", entry)

    assert local_store.peek("k", TokenEntry) == entry
    assert local_store.peek("other", TokenEntry) is None
    clock.now += 31
    assert local_store.peek("k", TokenEntry) is None  # dead at its expiry, without waiting


async def test_pages_survive_the_round_trip(store: SharedStore, clock: Clock) -> None:
    page = SplitPage("<html>h\u00e9ad\n".encode(), b"\ntail</html>")
    entry = PageEntry(page, '"etag"', None, clock.now + 60, clock.now + 660)

    await store.set("p", entry)

    assert await store.get("p", PageEntry, local=False) == entry


async def test_entries_die_at_their_expiry(store: SharedStore, clock: Clock) -> None:
    await store.set("k", TokenEntry("tok", clock.now + 30, clock.now))

    clock.now += 31

    assert await store.get("k", TokenEntry) is None


async def test_an_entry_already_dead_is_not_kept(store: SharedStore, clock: Clock) -> None:
    await store.set("k", TokenEntry("old", clock.now + 30, clock.now))
    await store.set("k", TokenEntry("dead", clock.now - 1, clock.now))

    assert await store.get("k", TokenEntry) is None


async def test_delete(store: SharedStore, clock: Clock) -> None:
    await store.set("k", TokenEntry("tok", clock.now + 30, clock.now))

    await store.delete("k")

    assert await store.get("k", TokenEntry) is None


async def test_a_lock_has_one_owner_at_a_time(store: SharedStore) -> None:
    owner = await store.acquire("lock", lease=10)

    assert owner is not None
    assert await store.acquire("lock", lease=10) is None
    await store.release("lock", "not-the-owner")
    assert await store.acquire("lock", lease=10) is None
    await store.release("lock", owner)
    again = await store.acquire("lock", lease=10)
    assert again is not None
    await store.release("lock", again)


async def test_ping_answers_while_the_store_is_up(store: SharedStore) -> None:
    assert await store.ping() is None


@pytest.mark.parametrize("tiered", [False, True], ids=["redis", "memory-over-redis"])
async def test_ping_raises_when_redis_is_gone(tiered: bool) -> None:
    with private_redis() as server:
        shared = RedisStore(server.url, secret=SECRET)
        store: SharedStore = TieredStore(MemoryStore(), shared, where="x") if tiered else shared
        await store.ping()
        server.kill()
        try:
            with pytest.raises((redis.RedisError, OSError)):
                await store.ping()  # readiness asks this: it must not say "up"
        finally:
            await store.aclose()


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
    prefix = f"wp-test-{secrets.token_hex(4)}:"
    store = RedisStore(require_redis(), secret=SECRET, prefix=prefix)
    try:
        assert await store.acquire("lock", lease=0.05) is not None

        await anyio.sleep(0.1)  # never returns early: the 50 ms lease has run out

        assert await store.acquire("lock", lease=0.05) is not None
    finally:
        await store.aclose()
        forget(require_redis(), prefix)


async def test_a_damaged_redis_entry_is_a_miss(clock: Clock) -> None:
    prefix = f"wp-test-{secrets.token_hex(4)}:"
    store = RedisStore(require_redis(), secret=SECRET, prefix=prefix, clock=clock)
    try:
        await store.set("p", TokenEntry("not a page", clock.now + 30, clock.now))

        assert await store.get("p", PageEntry) is None
    finally:
        await store.aclose()
        forget(require_redis(), prefix)


async def test_counts_add_up_and_old_slots_drop_out(store: SharedStore) -> None:
    first = await store.add_counts([("u", {10: 2, 11: 1}), ("v", {11: 5})], oldest=0, keep=120)
    second = await store.add_counts([("u", {11: 3, 12: 1})], oldest=11, keep=120)

    if isinstance(store, MemoryStore):  # one process: nothing is shared, nothing to add to
        assert first is None
        assert second is None
        return
    assert first == [{10: 2, 11: 1}, {11: 5}]
    assert second == [{11: 4, 12: 1}]  # slot 10 left the window: dropped, not counted


async def test_counts_of_an_empty_batch_and_an_idle_key(store: SharedStore) -> None:
    none = await store.add_counts([], oldest=0, keep=120)
    idle = await store.add_counts([("nobody", {})], oldest=0, keep=120)

    if isinstance(store, MemoryStore):
        assert (none, idle) == (None, None)
        return
    assert none == []
    assert idle == [{}]


async def test_a_value_moved_to_another_key_or_forged_is_a_miss_and_said(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"wp-test-{secrets.token_hex(4)}:"
    url = require_redis()
    store = RedisStore(url, secret=SECRET, prefix=prefix, clock=clock)
    other = RedisStore(url, secret="o" * 32, prefix=prefix, clock=clock)
    try:
        await store.set("tok:ann", TokenEntry("ann's token", clock.now + 30, clock.now))
        assert await store.get("tok:ann", TokenEntry) is not None
        with redis.Redis.from_url(url) as client:
            client.copy(f"{prefix}tok:ann", f"{prefix}tok:bob")  # one user's onto another's
            client.set(f"{prefix}tok:eve", b"0" * 16 + TokenEntry("forged", 2e9, 0).to_bytes())

        with caplog.at_level(logging.WARNING, logger="widget_proxy.cache"):
            assert await store.get("tok:bob", TokenEntry) is None
            assert await store.get("tok:eve", TokenEntry) is None
            assert await other.get("tok:ann", TokenEntry) is None  # another secret's
        assert await store.get("tok:ann", TokenEntry) is not None  # the real one still is
        assert "failed its check" in caplog.text
    finally:
        await store.aclose()
        await other.aclose()
        forget(url, prefix)


class Flapping:
    """A shared store that answers one call and fails the next, as a restarting Redis."""

    def __init__(self) -> None:
        self.calls = 0

    async def ping(self) -> None:
        self.calls += 1
        if self.calls % 2:
            raise redis.ConnectionError("loading")


async def test_a_flapping_redis_is_one_warning_and_one_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    store = TieredStore(MemoryStore(), Flapping(), where="redis://x", clock=clock)  # type: ignore[arg-type]

    with caplog.at_level(logging.WARNING, logger="widget_proxy.cache"):
        for _ in range(40):  # 20 seconds of answering one call and refusing the next
            with contextlib.suppress(redis.RedisError):
                await store.ping()
            clock.now += 0.5
        assert caplog.text.count("is unreachable") == 1
        assert "reachable again" not in caplog.text
        assert store.degraded() is not None

        store._shared = redis_that_answers()  # type: ignore[assignment]
        for _ in range(12):  # it answers every call now, for 6 s
            await store.ping()
            clock.now += 0.5

    assert caplog.text.count("is reachable again") == 1
    assert store.degraded() is None


def redis_that_answers() -> object:
    class Answers:
        async def ping(self) -> None:
            return None

    return Answers()
