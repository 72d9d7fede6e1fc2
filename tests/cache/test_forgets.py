"""The forget log in a real Redis: what a forget writes, what a sync reads, and the
message that wakes every process."""

from __future__ import annotations

import asyncio
import time

import redis

from tests.support.redis import private_redis
from widget_proxy.cache import Keys
from widget_proxy.cache.forgets import RedisForgets
from widget_proxy.cache.revocation import PURPOSE, Revocations
from widget_proxy.cache.topology import redis_client

HASHER = Keys("forgets-test-secret").hasher(PURPOSE)


def test_a_forget_is_written_read_back_and_wakes_a_subscriber() -> None:
    with private_redis() as server:

        async def run() -> None:
            one, two = redis_client(server.url), redis_client(server.url)
            try:
                writer = Revocations(HASHER, forget_log=RedisForgets(one, keep=100))
                reader = Revocations(HASHER, forget_log=RedisForgets(two, keep=100))
                purged: list[frozenset[str] | None] = []
                reader.on_purge(purged.append)
                log = RedisForgets(two, keep=100)
                wakeups = log.wakeups()
                await anext(wakeups)  # subscribed
                await writer.forget(["a@example.com", "b@example.com"])
                await asyncio.wait_for(anext(wakeups), 5)  # the message
                await reader.sync()
                users = {reader.user(e) for e in ("a@example.com", "b@example.com")}
                assert purged == [frozenset(users)]
                assert reader.suffix("a@example.com") == writer.suffix("a@example.com") != ""
                stamp = await log.stamp()
                await reader.sync()  # nothing new: one GET, no purge
                assert len(purged) == 1

                await writer.forget(everybody=True)
                await reader.sync()
                assert purged[-1] is None
                assert reader.suffix(None) == writer.suffix(None) != ""
                assert await log.stamp() != stamp
                assert (await log.read()).users == {}  # everybody's keys changed: no user's kept
                await wakeups.aclose()
            finally:
                await one.aclose()
                await two.aclose()

        asyncio.run(run())
        with redis.Redis.from_url(server.url) as client:
            stored = b" ".join(v for k in client.scan_iter() for v in [k, client.dump(k) or b""])
        assert b"example.com" not in stored  # keyed hashes only


def test_versions_older_than_keep_leave_redis_at_the_next_forget() -> None:
    with private_redis() as server:

        async def run() -> dict[str, tuple[str, float]]:
            client = redis_client(server.url)
            try:
                log = RedisForgets(client, keep=100)
                await log.write(["old"], "v1", time.time() - 101)
                await log.write(["new"], "v2", time.time())
                return (await log.read()).users
            finally:
                await client.aclose()

        assert set(asyncio.run(run())) == {"new"}
