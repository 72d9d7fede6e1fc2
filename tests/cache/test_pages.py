"""Page cache: fresh, stale-while-revalidate, 304 renewals and stale-if-error."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.support import Clock
from widget_proxy.cache import MemoryStore, PageCache
from widget_proxy.cache.pages import REFRESH_BACKOFF, PageFetch
from widget_proxy.delivery.inject import split_page
from widget_proxy.delivery.page import Color
from widget_proxy.errors import UpstreamTimeout
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
    for _ in range(20):
        await asyncio.sleep(0.01)


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
