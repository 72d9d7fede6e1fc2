"""Page cache: fresh, stale-while-revalidate, 304 renewals and stale-if-error."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from tests.support import Clock
from tests.support.redis import PrivateRedis, private_redis
from widget_proxy.cache import MemoryStore, PageCache, TieredStore
from widget_proxy.cache.pages import REFRESH_BACKOFF, PageFetch
from widget_proxy.cache.redis import RedisStore
from widget_proxy.delivery.inject import split_page
from widget_proxy.delivery.page import Color
from widget_proxy.errors import UpstreamTimeout
from widget_proxy.ops.metrics import Metrics
from widget_proxy.providers.returningai.widgets import Widget

pytestmark = pytest.mark.anyio

WIDGET = Widget("store", "w-1").path
TTL, STALE_IF_ERROR = 60.0, 600.0  # PAGE_CACHE_TTL, PAGE_STALE_IF_ERROR


class Origin:
    def __init__(self) -> None:
        self.version = 1
        self.calls: list[tuple[str | None, str | None]] = []
        self.fail = False

    async def page(
        self, path: str, color: Color, etag: str | None, last_modified: str | None
    ) -> PageFetch:
        self.calls.append((etag, last_modified))
        await asyncio.sleep(0.01)
        if self.fail:
            raise UpstreamTimeout("page timed out")
        tag = f'"v{self.version}"'
        if etag == tag:
            return PageFetch(None, tag, None)
        html = f'<script>window.__WIDGET_INIT__={{token:"", v: {self.version}}}</script>'
        return PageFetch(split_page(html), tag, "Sat, 21 Nov 2026 10:00:00 GMT")


def make(clock: Clock, origin: Origin) -> PageCache:
    return PageCache(
        MemoryStore(100, clock=clock),
        origin.page,
        scope="https://widgets.example.com",
        ttl=TTL,
        stale_if_error=STALE_IF_ERROR,
        clock=clock,
    )


async def page(pages: PageCache) -> bytes:
    found = pages.cached(WIDGET, "light") or await pages.fetch(WIDGET, "light")
    return found.render("T")


async def settle(pages: PageCache) -> None:
    """Until the refreshes running in the background have ended: the cache keeps each
    one's task while it runs, and each ends on its own (the origin answers or fails)."""
    for _ in range(100):
        running = list(pages._refreshing.values())
        if not running:
            return
        await asyncio.wait(running, timeout=10)
    raise AssertionError("a background refresh never ended")


async def test_fetched_once_while_fresh() -> None:
    clock, origin = Clock(), Origin()
    pages = make(clock, origin)

    first = await asyncio.gather(*(page(pages) for _ in range(100)))
    clock.now += 59
    again = [await page(pages) for _ in range(100)]

    assert set(first) == set(again) == {first[0]}
    assert len(origin.calls) == 1


async def test_stale_is_served_while_exactly_one_refresh_runs() -> None:
    clock, origin = Clock(), Origin()
    pages = make(clock, origin)
    await page(pages)
    origin.version = 2
    clock.now += 61

    served = [await page(pages) for _ in range(50)]
    await settle(pages)

    assert all(b"v: 1" in body for body in served)  # stale, at once
    assert len(origin.calls) == 2  # one background refresh, however many requests
    assert origin.calls[1] == ('"v1"', "Sat, 21 Nov 2026 10:00:00 GMT")
    assert b"v: 2" in await page(pages)


async def test_a_304_renews_the_entry_without_a_body() -> None:
    clock, origin = Clock(), Origin()
    pages = make(clock, origin)
    before = await page(pages)
    clock.now += 61

    await page(pages)
    await settle(pages)
    clock.now += 59  # fresh again thanks to the 304

    assert await page(pages) == before
    assert len(origin.calls) == 2


async def test_stale_if_error(caplog: pytest.LogCaptureFixture) -> None:
    clock, origin = Clock(), Origin()
    pages = make(clock, origin)
    good = await page(pages)
    origin.fail = True
    clock.now += 61

    with caplog.at_level(logging.WARNING, logger="widget_proxy.cache"):
        assert await page(pages) == good
        await settle(pages)
    assert "page refresh failed: page timed out" in caplog.text

    assert await page(pages) == good  # backing off: no second refresh yet
    await settle(pages)
    assert len(origin.calls) == 2
    clock.now += REFRESH_BACKOFF
    assert await page(pages) == good
    await settle(pages)
    assert len(origin.calls) == 3

    clock.now = 1_000_000.0 + TTL + STALE_IF_ERROR  # past TTL + PAGE_STALE_IF_ERROR
    with pytest.raises(UpstreamTimeout):
        await page(pages)

    origin.fail = False
    assert await page(pages) == good  # healed: fetched again in the foreground


async def test_colours_are_separate_entries() -> None:
    clock, origin = Clock(), Origin()
    pages = make(clock, origin)

    await pages.fetch(WIDGET, "light")
    await pages.fetch(WIDGET, "dark")
    await pages.fetch(Widget("channel", "w-1").path, "dark")

    assert len(origin.calls) == 3


async def test_a_refresh_that_breaks_unexpectedly_still_backs_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, origin = Clock(), Origin()
    pages = make(clock, origin)
    good = await page(pages)
    clock.now += 61

    async def broken(*args: object) -> PageFetch:
        origin.calls.append((None, None))
        raise RuntimeError("a bug, not an upstream error")

    pages._fetch = broken  # what a hostile page once did: fail outside the upstream errors
    with caplog.at_level(logging.WARNING, logger="widget_proxy.cache"):
        for _ in range(50):  # a burst of page views while the refresh keeps breaking
            assert await page(pages) == good
            await settle(pages)

    assert len(origin.calls) == 2  # the first fetch, and one refresh: then it backed off
    assert caplog.text.count("page refresh failed: RuntimeError") == 1


def test_a_page_entry_travels_as_bytes_unchanged() -> None:
    from widget_proxy.cache.pages import PageEntry

    page = split_page('<script>window.__WIDGET_INIT__={token:""}</script>\n<p>é</p>')
    for etag, modified in (('"v1"', "Sat, 21 Nov 2026 10:00:00 GMT"), (None, None)):
        entry = PageEntry(page, etag, modified, 1_000_060.0, 1_000_660.0)
        assert PageEntry.from_bytes(entry.to_bytes()) == entry
    with pytest.raises(ValueError, match="not a page entry"):
        PageEntry.from_bytes(b"no header line")


@pytest.mark.parametrize("via", ["cached", "fetch"])
async def test_each_page_is_fetched_and_refreshed_as_itself(via: str) -> None:
    clock = Clock()
    asked: list[tuple[str, Color]] = []

    async def fetch(path: str, color: Color, etag: str | None, modified: str | None) -> PageFetch:
        asked.append((path, color))
        await asyncio.sleep(0)
        seen = f"{path} {color} {len(asked)}"
        html = f'<script>window.__WIDGET_INIT__={{token:"", p: "{seen}"}}</script>'
        return PageFetch(split_page(html))

    pages = PageCache(MemoryStore(100, clock=clock), fetch, scope="https://w", ttl=TTL, clock=clock)
    channel = Widget("channel", "w-2").path
    # Two pages missing at once are two upstream fetches, each of its own page.
    first = await asyncio.gather(pages.fetch(WIDGET, "light"), pages.fetch(channel, "dark"))
    assert sorted(asked) == sorted([(WIDGET, "light"), (channel, "dark")])
    assert [b"store" in p.render("T") for p in first] == [True, False]
    clock.now += TTL

    both: list[tuple[str, Color]] = [(WIDGET, "light"), (channel, "dark")]
    for path, color in both:  # stale: served, and refreshed
        stale = pages.cached(path, color) if via == "cached" else await pages.fetch(path, color)
        assert stale is not None
    await settle(pages)

    assert sorted(asked[2:]) == sorted([(WIDGET, "light"), (channel, "dark")])
    refreshed = (await pages.fetch(channel, "dark")).render("T")
    assert f"{channel} dark 3".encode() in refreshed or f"{channel} dark 4".encode() in refreshed


def events(metrics: Metrics) -> dict[str, float]:
    """The page cache's counters as an operator reads them at /metrics."""
    get = metrics.registry.get_sample_value
    seen = {
        outcome: get("widget_proxy_cache_events_total", {"cache": "page", "outcome": outcome})
        for outcome in ("hit", "stale", "miss")
    }
    seen["coalesced"] = get("widget_proxy_coalesced_waiters_total", {"cache": "page"})
    return {name: value or 0.0 for name, value in seen.items()}


# (seconds since the first fetch, how the page is asked for, how many callers at once,
# the counters after it): a miss, callers that joined it, hits, one stale view.
VIEWS = [
    (0.0, "fetch", 3, {"hit": 0, "stale": 0, "miss": 3, "coalesced": 2}),
    (0.0, "fetch", 1, {"hit": 1, "stale": 0, "miss": 3, "coalesced": 2}),
    (TTL - 0.5, "cached", 1, {"hit": 2, "stale": 0, "miss": 3, "coalesced": 2}),
    (TTL, "fetch", 1, {"hit": 2, "stale": 1, "miss": 3, "coalesced": 2}),  # refreshed
    (TTL, "cached", 1, {"hit": 3, "stale": 1, "miss": 3, "coalesced": 2}),
    (2 * TTL + STALE_IF_ERROR, "fetch", 1, {"hit": 3, "stale": 1, "miss": 4, "coalesced": 2}),
]


async def test_hits_misses_stale_views_and_joined_callers_are_counted() -> None:
    clock, origin, metrics = Clock(), Origin(), Metrics()
    start = clock.now
    pages = PageCache(
        MemoryStore(100, clock=clock), origin.page, scope="https://w", ttl=TTL,
        stale_if_error=STALE_IF_ERROR, metrics=metrics, clock=clock,
    )  # fmt: skip

    for at, how, callers, counted in VIEWS:
        clock.now = start + at
        if how == "fetch":
            await asyncio.gather(*(pages.fetch(WIDGET, "light") for _ in range(callers)))
        else:
            assert pages.cached(WIDGET, "light") is not None
        await settle(pages)
        assert events(metrics) == counted, (at, how)


# With the defaults (PAGE_CACHE_TTL=60, PAGE_STALE_IF_ERROR=600) and an upstream that
# fails after the first fetch: what a view gets, by the page's age.
DEFAULT_AGES = [(59.9, "hit"), (60.0, "stale"), (659.9, "stale"), (660.0, "error")]


@pytest.mark.parametrize(("age", "outcome"), DEFAULT_AGES)
async def test_the_default_ttl_and_stale_window(age: float, outcome: str) -> None:
    clock, origin, metrics = Clock(), Origin(), Metrics()
    pages = PageCache(
        MemoryStore(100, clock=clock), origin.page, scope="s", metrics=metrics, clock=clock
    )
    good = await page(pages)
    origin.fail = True
    clock.now += age

    if outcome == "error":
        with pytest.raises(UpstreamTimeout):
            await page(pages)
        return
    assert await page(pages) == good
    assert events(metrics)[outcome] == 1


async def test_a_304_keeps_the_page_fresh_for_another_ttl() -> None:
    clock, origin, metrics = Clock(), Origin(), Metrics()
    pages = PageCache(
        MemoryStore(100, clock=clock), origin.page, scope="s", ttl=TTL, metrics=metrics,
        clock=clock,
    )  # fmt: skip
    before = await page(pages)
    clock.now += TTL
    await page(pages)  # stale: revalidated, 304
    await settle(pages)

    clock.now += TTL - 1
    assert await page(pages) == before
    await settle(pages)

    assert events(metrics) == {"hit": 1, "stale": 1, "miss": 1, "coalesced": 0}
    assert origin.calls == [(None, None), ('"v1"', "Sat, 21 Nov 2026 10:00:00 GMT")]


@pytest.mark.parametrize(("age", "more"), [(TTL + 1, "599"), (TTL + STALE_IF_ERROR - 0.4, "0")])
async def test_a_failed_refresh_says_how_long_the_cached_page_is_served(
    age: float, more: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock, origin = Clock(), Origin()
    pages = make(clock, origin)
    await page(pages)
    origin.fail = True
    clock.now += age

    with caplog.at_level(logging.WARNING, logger="widget_proxy.cache"):
        await page(pages)
        await settle(pages)

    assert [r.getMessage() for r in caplog.records if r.name == "widget_proxy.cache"] == [
        f"page refresh failed: page timed out; serving the cached page for up to {more} s more"
    ]


async def test_two_vendors_pages_in_one_store_are_kept_apart() -> None:
    clock = Clock()
    store = MemoryStore(100, clock=clock)
    one, two = Origin(), Origin()
    two.version = 2
    first = PageCache(store, one.page, scope="https://one.example", clock=clock)
    second = PageCache(store, two.page, scope="https://two.example", clock=clock)

    assert b"v: 1" in (await first.fetch(WIDGET, "light")).render("T")
    assert b"v: 2" in (await second.fetch(WIDGET, "light")).render("T")


async def test_a_process_waits_for_the_page_another_is_fetching() -> None:
    clock, origin = Clock(), Origin()
    store = MemoryStore(100, clock=clock)  # the store two processes share
    one, two = (PageCache(store, origin.page, scope="s", clock=clock) for _ in range(2))

    pages = await asyncio.gather(one.fetch(WIDGET, "light"), two.fetch(WIDGET, "light"))

    assert pages[0] == pages[1]
    assert len(origin.calls) == 1  # the second waited on the lock, then read the first's page


async def test_a_lock_held_by_a_dead_process_is_taken_once_its_lease_ran_out() -> None:
    clock, origin = Clock(), Origin()
    store = MemoryStore(100, clock=clock)
    hung = asyncio.Event()

    async def never(*args: object) -> PageFetch:
        await hung.wait()  # the process died mid-fetch: it never writes, never releases
        raise AssertionError("unreachable")

    dead = PageCache(store, never, scope="s", lease=3.0, clock=clock)
    alive = PageCache(store, origin.page, scope="s", lease=3.0, clock=clock)
    dying = asyncio.ensure_future(dead.fetch(WIDGET, "light"))
    await asyncio.sleep(0)
    waiting = asyncio.ensure_future(alive.fetch(WIDGET, "light"))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # the lock is held
    assert origin.calls == []

    clock.now += 3.0  # the dead one's lease ran out
    page = await asyncio.wait_for(waiting, timeout=5)

    assert b"v: 1" in page.render("T")
    assert len(origin.calls) == 1
    dying.cancel()


# --- several processes, through Redis ---------------------------------------------------


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


@pytest.fixture
async def processes(
    redis_server: PrivateRedis,
) -> AsyncIterator[tuple[Clock, Origin, list[PageCache], list[TieredStore]]]:
    """Two processes (each its own memory, one shared Redis) in front of one origin."""
    clock, origin = Clock(), Origin()
    stores = [
        TieredStore(
            MemoryStore(100, clock=clock),
            RedisStore(redis_server.url, secret="s" * 32, clock=clock),
            where=redis_server.url,
        )
        for _ in range(2)
    ]
    pages = [
        PageCache(s, origin.page, scope="s", ttl=TTL, stale_if_error=STALE_IF_ERROR, clock=clock)
        for s in stores
    ]
    yield clock, origin, pages, stores
    for store in stores:
        await store.aclose()


Processes = tuple[Clock, Origin, list[PageCache], list[TieredStore]]


async def test_a_page_another_process_refreshed_is_taken_from_redis(processes: Processes) -> None:
    clock, origin, (one, two), _ = processes
    await page(one)
    await page(two)  # from Redis: no upstream call
    clock.now += TTL
    origin.version = 2
    await page(one)  # stale here: refreshed, and written to Redis
    await settle(one)

    assert b"v: 1" in await page(two)  # stale in this process's memory: served at once
    await settle(two)

    assert b"v: 2" in await page(two)  # the refresh found the other's page in Redis
    assert origin.calls == [(None, None), ('"v1"', "Sat, 21 Nov 2026 10:00:00 GMT")]


async def test_a_refresh_asks_with_the_newest_validators_in_redis(processes: Processes) -> None:
    clock, origin, (one, two), _ = processes
    await page(one)
    await page(two)
    clock.now += TTL
    origin.version = 2
    await page(one)
    await settle(one)  # v2 in Redis; the other process still holds v1
    clock.now += TTL  # v2 is stale too

    await page(two)
    await settle(two)

    assert origin.calls[-1] == ('"v2"', "Sat, 21 Nov 2026 10:00:00 GMT")  # answered 304
    assert b"v: 2" in await page(two)


async def test_a_refresh_another_process_is_running_is_left_to_it(
    processes: Processes, redis_server: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    clock, origin, (one, _), _ = processes
    await page(one)
    clock.now += TTL
    other = RedisStore(redis_server.url, secret="s" * 32, clock=clock)
    owner = await other.acquire(one.key(WIDGET, "light"), 9.0)  # refreshing it right now
    assert owner is not None

    with caplog.at_level(logging.WARNING, logger="widget_proxy.cache"):
        assert b"v: 1" in await page(one)
        await settle(one)
    assert len(origin.calls) == 1  # no second fetch while the other holds the lock
    assert not [r for r in caplog.records if r.name == "widget_proxy.cache"]  # no back-off

    await other.release(one.key(WIDGET, "light"), owner)
    await other.aclose()
    await page(one)
    await settle(one)
    assert len(origin.calls) == 2


async def test_a_page_gone_from_redis_is_revalidated_and_written_back(
    processes: Processes, redis_server: PrivateRedis
) -> None:
    clock, origin, (one, two), _ = processes
    await page(one)
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()  # evicted, or a Redis restarted empty
    clock.now += TTL

    assert b"v: 1" in await page(one)  # from this process's memory
    await settle(one)

    assert origin.calls[-1] == ('"v1"', "Sat, 21 Nov 2026 10:00:00 GMT")  # a 304
    assert b"v: 1" in await page(two)  # back in Redis: the other process reads it there
    assert len(origin.calls) == 2
