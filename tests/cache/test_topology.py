"""Redis Sentinel and Redis Cluster as the shared store, on servers the tests start.

The behavioural suite (test_store.py) runs over both too; here is what only they have:
a failover, a failing call bounded through sentinels that don't answer, and batches of
keys in many hash slots.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Literal

import anyio
import pytest
from redis.crc import key_slot
from redis.exceptions import RedisError

from tests.support import Clock, LeakScanner, Proxy, fresh_secret
from tests.support.processes import run_check
from tests.support.redis import (
    PrivateCluster,
    broken_nodes,
    private_cluster,
    private_sentinel,
    script_calls,
)
from widget_proxy.cache import MemoryStore, RedisStore, TieredStore, TokenEntry, open_store
from widget_proxy.cache.counts import BUCKETS, WindowCounters
from widget_proxy.cache.redis import RATE_GROUPS, rate_key
from widget_proxy.cache.topology import TIMEOUT
from widget_proxy.providers.returningai import ReturningAIStandIn

pytestmark = [pytest.mark.anyio, pytest.mark.slow]  # Sentinels and Clusters of their own
SECRET = "s" * 32


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    with private_cluster() as found:
        yield found


@pytest.fixture
async def cluster_store(cluster: PrivateCluster, clock: Clock) -> AsyncIterator[RedisStore]:
    store = RedisStore(cluster.url, secret=SECRET, prefix=f"wp-test-{secrets.token_hex(4)}:")
    yield store
    await store.aclose()


async def test_a_sentinel_store_answers_again_after_a_failover() -> None:
    with private_sentinel() as found:
        store = open_store(found.url, secret=SECRET)  # memory in front of the master
        assert isinstance(store, TieredStore)
        check = RedisStore(found.url, secret=SECRET)  # reads Redis itself, not the memory
        try:
            now = time.time()
            await store.set("before", TokenEntry("before", now + 60, now))
            assert await check.get("before", TokenEntry) is not None
            old_master = found.master.port

            found.master.kill()  # SIGKILL: no goodbye to the replica or the clients
            deadline = time.monotonic() + 30
            while found.master_port() in (old_master, None):
                assert time.monotonic() < deadline, "the sentinels promoted no replica"
                await anyio.sleep(0.1)
            assert found.master_port() == found.replica.port

            # The same store, not rebuilt: once its retry pause is over, it asks the
            # sentinels where the master is now, and answers from it.
            while True:
                try:
                    await store.ping()
                    break
                except Exception:
                    assert time.monotonic() < deadline, "the store never found the new master"
                    await anyio.sleep(0.2)
            now = time.time()
            await store.set("after", TokenEntry("after", now + 60, now))
            assert await check.get("after", TokenEntry) == TokenEntry("after", now + 60, now)
            assert check.topology() == {
                "topology": "sentinel",
                "service": found.service,
                "master": f"127.0.0.1:{found.replica.port}",
            }
            # "before" may be lost: replication is asynchronous, and a write the replica
            # had not received when the master died is gone. Not asserted either way.
        finally:
            await store.aclose()
            await check.aclose()


async def test_a_failing_call_through_refusing_sentinels_fails_at_once() -> None:
    async with broken_nodes("closing") as nodes:
        ports = nodes.ports  # closed once the block ends: these ports then refuse
    store = open_store(nodes.url(), secret=SECRET)
    assert isinstance(store, TieredStore)
    try:
        started = time.monotonic()
        await store.set("k", TokenEntry("v", time.time() + 60, time.time()))  # no raise
        elapsed = time.monotonic() - started
        assert store.degraded() is not None
    finally:
        await store.aclose()
    # redis-py's default (10 retries, backoff up to 1 s, per sentinel) took 10.9 s here.
    assert elapsed < 5, (ports, elapsed)


@pytest.mark.parametrize("behaviour", ["closing", "silent"])
async def test_a_failing_call_asks_each_sentinel_once_and_retries_a_reset_once(
    behaviour: Literal["closing", "silent"],
) -> None:
    async with broken_nodes(behaviour) as nodes:
        store = RedisStore(nodes.url(), secret=SECRET)
        try:
            started = time.monotonic()
            with pytest.raises(RedisError):
                await store.ping()
            elapsed = time.monotonic() - started
        finally:
            await store.aclose()

    if behaviour == "closing":  # a reset is tried once more, then the next sentinel
        assert nodes.connections == [2, 2, 2]  # redis-py's default: 11 each
    else:  # a sentinel that times out is not asked again: the next one is
        assert nodes.connections == [1, 1, 1]  # redis-py's default: 11 each, ~35 s
        assert elapsed < 3 * TIMEOUT + 2, elapsed  # one TIMEOUT each, and a margin


async def test_counts_of_keys_in_many_slots_come_back_in_order(
    cluster: PrivateCluster, cluster_store: RedisStore
) -> None:
    keys = [f"user-{n}" for n in range(200)]
    # Ungrouped, under the production prefix, these keys would be one script call each.
    # (Not under the test's random prefix: CRC16 puts some prefixes' 200 keys in as few
    # as 144 slots, which failed this assertion in about one run in a hundred.)
    plain = {key_slot(f"widget-proxy:rate:{k}".encode()) for k in keys}
    grouped = {key_slot(rate_key(k, cluster_store._prefix).encode()) for k in keys}
    assert len(plain) == 200
    assert len(grouped) == RATE_GROUPS  # on every node: no CROSSSLOT

    first = await cluster_store.add_counts(
        [(k, {10: n + 1}) for n, k in enumerate(keys)], oldest=0, keep=120
    )
    before = script_calls(cluster.nodes)  # the script is loaded on every node now
    second = await cluster_store.add_counts(
        [(k, {10: 1, 11: n + 1}) for n, k in enumerate(reversed(keys))], oldest=0, keep=120
    )
    calls = script_calls(cluster.nodes) - before

    assert first == [{10: n + 1} for n in range(200)]
    assert second == [{10: 201 - n, 11: n + 1} for n in range(200)]
    assert calls == RATE_GROUPS  # one per group, not one per slot (~200)


async def test_rate_counts_are_shared_through_the_cluster(cluster: PrivateCluster) -> None:
    width = 60 / BUCKETS
    clock = Clock(1_000_000.0 - 1_000_000.0 % width)
    prefix = f"wp-test-{secrets.token_hex(4)}:"
    stores = [
        TieredStore(
            MemoryStore(100),
            RedisStore(cluster.url, secret=SECRET, prefix=prefix, clock=clock),
            where=cluster.url,
            clock=clock,
        )
        for _ in range(2)
    ]
    one, two = (
        WindowCounters(shared=store, sync_interval=3600, eager=False, clock=clock)
        for store in stores
    )
    try:
        before_sync = admitted(one, 4) + admitted(two, 4)
        await one.sync()  # one: its own 4
        await two.sync()  # two: 4 + 4
        stale = admitted(one, 5)  # one's view is one sync old
        await one.sync()  # one: 4 + 4 + 1
        after_sync = admitted(one, 5) + admitted(two, 5)

        # As over one server (test_counts.py): once synced, both see 9 of 5, none more.
        assert (before_sync, stale, after_sync) == (8, 1, 0)
        assert stores[0].degraded() is None
    finally:
        await one.aclose()
        await two.aclose()
        for store in stores:
            await store.aclose()


def admitted(counters: WindowCounters, n: int) -> int:
    return sum(counters.throttle("u", 5) == 0 for _ in range(n))


async def test_a_cluster_store_says_its_topology(cluster_store: RedisStore) -> None:
    await cluster_store.ping()  # the client learns the nodes on its first command

    assert cluster_store.topology() == {"topology": "cluster", "nodes": 3}


@pytest.mark.parametrize("kind", ["sentinel", "cluster"])
def test_readiness_and_check_say_the_topology(
    kind: str,
    cluster: PrivateCluster,
    make_proxy: Callable[..., Proxy],
    tmp_path: Path,
    vendor: ReturningAIStandIn,
    upstream: str,
    leak_scanner: LeakScanner,
) -> None:
    with ExitStack() as stack:
        url = cluster.url if kind == "cluster" else stack.enter_context(private_sentinel()).url
        proxy = make_proxy(CACHE_URL=url)
        ready = proxy.client.get("/readyz").json()
        env = {**vendor.proxy_env(upstream), "SESSION_SECRET": fresh_secret(), "CACHE_URL": url}
        checked = run_check(tmp_path, env, "t@example.com")

    assert ready["cache"]["topology"] == kind
    if kind == "sentinel":
        assert ready["cache"]["master"].startswith("127.0.0.1:")
        expected = (
            r"^✔ cache: sentinel Redis answers \(service wp-master, master 127\.0\.0\.1:\d+\)$"
        )
    else:
        assert ready["cache"]["nodes"] == 3
        expected = r"^✔ cache: cluster Redis answers \(nodes 3\)$"
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert re.search(expected, checked.stdout, re.MULTILINE), checked.stdout
    leak_scanner.check("the check's output", checked.stdout + checked.stderr)
