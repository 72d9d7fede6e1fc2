"""The caches' spans say how each token and page came: a hit, a miss this request had
made, a wait for another's (coalesced), a stale page served while it is revalidated."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from tests.support import EMAIL, Clock, Proxy
from tests.support.otlp import named, traced, tree
from widget_proxy.providers.returningai import ReturningAIStandIn

RESULT = "widget_proxy.cache.result"


def test_concurrent_cold_views_wait_for_one_issue_and_one_download(
    make_proxy: Callable[..., Proxy], vendor: ReturningAIStandIn
) -> None:
    vendor.signin_delay = vendor.page_delay = 0.5  # the others arrive while it runs
    with traced(make_proxy) as run, ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: run.proxy.get("/widget", EMAIL).status_code, range(3)))
        assert answers == [200] * 3
        spans = run.spans(3)
    assert vendor.calls["signin"] == 1
    for name in ("token fetch", "page fetch"):
        assert sorted(s.attributes[RESULT] for s in named(spans, name)) == [
            "coalesced",
            "coalesced",
            "miss",
        ], name
    (issue,) = named(spans, "token issue")  # only the one that issued
    (fetch,) = (s for s in named(spans, "token fetch") if s.attributes[RESULT] == "miss")
    assert issue.parent_id == fetch.span_id


def test_a_stale_page_is_served_and_revalidated_under_its_lookup(
    make_proxy: Callable[..., Proxy],
) -> None:
    clock = Clock()
    with traced(make_proxy, clock=clock, PAGE_CACHE_TTL="60") as run:
        assert run.proxy.get("/widget", EMAIL).status_code == 200
        clock.now += 61  # past the page's freshness, within its stale-if-error window
        assert run.proxy.get("/widget", EMAIL).status_code == 200
        spans = run.received.wait_for(lambda spans: len(named(spans, "page download")) == 2)
    lookups = named(spans, "page lookup")
    assert [s.attributes[RESULT] for s in lookups] == ["miss", "stale"]
    cold, revalidation = named(spans, "page download")
    assert revalidation.parent_id == lookups[1].span_id  # the refresh it started
    assert cold.attributes["widget_proxy.page.conditional"] is False
    assert revalidation.attributes["widget_proxy.page.conditional"] is True
    assert revalidation.attributes["widget_proxy.page.revalidated"] is True  # a 304
    assert "upstream page" in tree(spans, revalidation)[1]
