"""The warm run with Redis as the proxy's store, which scenarios 1b, 6, 6b and 6c share,
and the cleaning of the shared `--redis-url` database around it (scenario 7 cleans it
the same way). Only the proxy's own keys are deleted, so the benchmark can borrow a
database without wiping it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bench.harness import LONG_TTL, Harness
from bench.loadgen import LoadResult
from widget_proxy.cache import redacted_url

REDIS_PREFIX: Final = "widget-proxy:"


async def over_redis(
    harness: Harness,
    workers: int,
    label: str,
    url: str | None = None,
    *,
    rounds: int = 1,
    beside: Callable[[], Awaitable[None]] | None = None,
) -> tuple[LoadResult, Counter[str], LoadResult, Counter[str]] | str:
    """The warm run with Redis as the store: (warm-up, its calls, load, its calls),
    or why Redis can't be used. `url`: a deployment of the run's own (fresh, and
    thrown away after), instead of the shared `--redis-url` (cleaned before and after).
    `rounds`: load runs of the warm proxy, the best one kept; `beside`: what runs
    before each of them (another server's run, measured in turn with this one)."""
    c = harness.config
    shared = url is None
    url = c.redis_url if url is None else url
    problem = await forget(url) if shared else None
    if problem is not None:
        return problem
    await harness.latency(LONG_TTL)
    cookies = harness.cookies(c.users)
    try:
        async with harness.stack.proxy(
            workers=workers, CACHE_URL=url, PAGE_CACHE_TTL=str(LONG_TTL)
        ) as proxy:
            if workers > 1:
                await asyncio.sleep(1.0)  # uvicorn starts its workers one after the other
            primed, warmed = await harness.prime(proxy, cookies)
            best: tuple[LoadResult, Counter[str]] | None = None
            for _ in range(rounds):
                if beside is not None:
                    await beside()
                run = await harness.measure(proxy, cookies, c.duration)
                if best is None or run[0].rps > best[0].rps:
                    best = run
            assert best is not None  # (at least one round)
            load, during = best
            await harness.profiled(proxy, cookies, label)
    finally:
        if shared:
            await forget(url)
    return primed, warmed, load, during


async def forget(url: str) -> str | None:
    """Delete the proxy's keys (only those) from the benchmark's Redis database.

    None when done; else why Redis can't be used.
    """
    client = aioredis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
    try:
        keys = [key async for key in client.scan_iter(match=REDIS_PREFIX + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    except (RedisError, OSError) as exc:
        return f"no Redis at {redacted_url(url)} ({type(exc).__name__})"
    finally:
        await client.aclose()
    return None
