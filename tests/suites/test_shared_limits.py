"""Shared rate limits off the warm path, against a real Redis and real proxy processes.

A page view decides its limits in its own process; every `RATE_LIMIT_SYNC_INTERVAL`
each process adds its counts to Redis and reads back the total. So the limit is
shared, overshoots by at most what the other processes admit before each can see it
(two intervals and three round trips: `counts.admitted_at_most`), even with Redis far
away (behind a relay that delays every chunk), keeps working (per process) with Redis
gone, and a warm page view sends Redis nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis

from tests.support import LeakScanner, Proxy, scanning_client
from tests.support.processes import (
    SHARED_LIMIT,
    assert_shared,
    bound,
    paced_past_the_limit,
    serve,
)
from tests.support.redis import private_redis
from tests.support.relay import delaying_relay
from widget_proxy.providers.returningai import ReturningAIStandIn


def commands(client: redis.Redis) -> int:
    """Commands Redis has processed (over one connection, so each call adds one: INFO)."""
    return int(client.info("stats")["total_commands_processed"])


def settled(client: redis.Redis) -> None:
    """Until Redis sees nothing but our INFO for a quarter of a second."""
    last = commands(client)
    for _ in range(40):
        time.sleep(0.25)
        now = commands(client)
        if now - last == 1:
            return
        last = now
    raise AssertionError(f"Redis kept receiving commands: {client.info('commandstats')}")


@pytest.mark.slow
def test_two_processes_share_one_limit_within_the_documented_bound(
    tmp_path: Path, vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        private_redis() as server,
        serve(tmp_path / "a", vendor, upstream, leak_scanner, CACHE_URL=server.url,
              **SHARED_LIMIT) as a,
        serve(tmp_path / "b", vendor, upstream, leak_scanner, CACHE_URL=server.url,
              **SHARED_LIMIT) as b,
        scanning_client(leak_scanner, timeout=10) as client,
    ):  # fmt: skip
        answers = paced_past_the_limit(client, [a, b])

        server.kill()  # Redis goes away: each process limits alone, and nothing fails
        during_outage = [
            client.get(f"{p.url}/widget", headers=p.cookie("new.user@example.com")).status_code
            for p in (a, b)
            for _ in range(3)
        ]

    assert_shared(answers, bound(2))
    assert during_outage == [200] * 6


# (processes, seconds each way between a proxy and Redis): a sync's round trip is twice it.
FAR = [(1, 0.15), (2, 0.025), (2, 0.1)]


@pytest.mark.slow
@pytest.mark.parametrize(("processes", "delay"), FAR)
def test_with_redis_far_away_the_limit_stays_within_its_bound(
    tmp_path: Path,
    vendor: ReturningAIStandIn,
    upstream: str,
    leak_scanner: LeakScanner,
    processes: int,
    delay: float,
) -> None:
    with (
        private_redis() as server,
        delaying_relay(server.port, delay) as url,
        ExitStack() as stack,
        scanning_client(leak_scanner, timeout=10) as client,
    ):
        proxies = []
        for n in range(processes):
            (tmp_path / str(n)).mkdir()
            proxies.append(stack.enter_context(serve(
                tmp_path / str(n), vendor, upstream, leak_scanner, CACHE_URL=url, **SHARED_LIMIT
            )))  # fmt: skip
        most = bound(processes, round_trip=2 * delay + 0.01)
        answers = paced_past_the_limit(client, proxies)

    assert_shared(answers, most)


@pytest.mark.slow
def test_a_warm_page_view_sends_redis_nothing(
    make_proxy: Callable[..., Proxy], vendor: ReturningAIStandIn
) -> None:
    with private_redis() as server, redis.Redis.from_url(server.url) as client:
        proxy = make_proxy(
            CACHE_URL=server.url,
            RATE_LIMIT_SYNC_INTERVAL="3600",  # the sync doesn't come round during the count
            PAGE_CACHE_TTL="3600",
        )
        users = [f"user{n}@example.com" for n in range(20)]
        for _ in range(2):  # warm: every token and the page here, every count's view too
            for email in users:
                assert proxy.get("/widget", email).status_code == 200
        settled(client)  # the fills' last writes (their lock releases) have landed
        before = commands(client)

        statuses = [proxy.get("/widget", email).status_code for _ in range(10) for email in users]

        after = commands(client)

    assert statuses == [200] * 200
    assert after - before == 1  # the first INFO itself: no command came from 200 page views
    assert vendor.calls["signin"] == 20  # (the warm-up's)
