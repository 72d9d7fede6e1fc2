"""Scenarios 3, 4 and 5: the token cache filling and refreshing. Cold bursts (one user
sent many times at once, then many users once each) count that concurrent first
requests cost one signin per user; token expiry under load counts the refreshes and
samples pages for expired tokens; memory measures the RSS each cached token adds.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from bench.harness import (
    COLD_USERS,
    DEFAULT_TTL,
    EXPIRY_USERS,
    LONG_TTL,
    MEMORY_USERS,
    Harness,
    ratio,
)
from bench.http import Reply, burst
from bench.loadgen import Target, percentile
from bench.outcome import Outcome
from bench.processes import Server
from bench.report import Check, Row, ms, upstream_calls
from bench.sampler import sample


def mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"


# --- 3. cold bursts ---------------------------------------------------------------


async def cold(harness: Harness) -> Outcome:
    c = harness.config
    await harness.latency(DEFAULT_TTL)
    one = harness.cookies(1, COLD_USERS)[0]
    many = harness.cookies(c.burst, COLD_USERS + 1)
    async with harness.stack.proxy() as proxy:  # fresh: nothing cached
        single, single_calls = await timed_burst(harness, proxy, [one] * c.burst)
        spread, spread_calls = await timed_burst(harness, proxy, many)
    return Outcome(
        rows=[
            burst_row(f"3. cold burst: 1 user x {c.burst:,}", single, single_calls),
            burst_row(f"3. cold burst: {c.burst:,} users x 1", spread, spread_calls),
        ],
        checks=[
            Check(
                f"Exactly 1 signin and 1 page fetch in the one-user cold burst ({c.burst:,})",
                upstream_calls(single_calls),
                single_calls["signin"] == 1 and single_calls["page"] == 1,
            ),
            Check(
                f"Exactly U signins for U users (cold burst, U = {c.burst:,})",
                f"{spread_calls['signin']:,} signins",
                spread_calls["signin"] == c.burst,
            ),
        ],
    )


async def timed_burst(
    harness: Harness, server: Server, cookies: list[str]
) -> tuple[tuple[list[Reply], float, int], Counter[str]]:
    before = await harness.stack.calls()
    started = time.perf_counter()
    replies = await burst(server.port, "/widget", cookies)
    elapsed = time.perf_counter() - started
    return (replies, elapsed, len(cookies)), await harness.stack.calls() - before


def burst_row(name: str, result: tuple[list[Reply], float, int], calls: Counter[str]) -> Row:
    replies, elapsed, sent = result
    latencies = sorted(r.elapsed for r in replies)
    ok = sum(r.status == 200 for r in replies)
    return Row(
        name,
        rps=f"{len(replies) / elapsed:,.0f}",
        p50=ms(percentile(latencies, 50)),
        p99=ms(percentile(latencies, 99)),
        errors=f"{sent - ok:,}",
        upstream=upstream_calls(calls),
        notes=f"all {sent:,} sent at once; the burst took {ms(elapsed)}",
    )


# --- 4. tokens expiring under load -------------------------------------------------


async def expiry(harness: Harness) -> Outcome:
    c = harness.config
    await harness.latency(c.token_ttl)
    cookies = harness.cookies(c.expiry_users, EXPIRY_USERS)
    margin = f"{c.refresh_margin:g}"
    async with harness.stack.proxy(TOKEN_REFRESH_MARGIN=margin) as proxy:
        await harness.prime(proxy, cookies)
        stop = asyncio.Event()
        checker = asyncio.create_task(sample(Target(proxy.port), cookies, stop))
        try:
            load, during = await harness.measure(proxy, cookies, c.expiry_duration)
        finally:
            stop.set()
            samples = await checker
    expected = c.expiry_users * load.seconds / (c.token_ttl - c.refresh_margin)
    got = ratio(during["signin"], expected)
    least = "-" if samples.least_left is None else f"{samples.least_left:.2f} s"
    notes = (
        f"{c.expiry_users} users, token exp {c.token_ttl} s, TOKEN_REFRESH_MARGIN {margin} s,"
        f" {load.seconds:.0f} s; {samples.checked:,} pages checked beside the load:"
        f" {samples.expired} expired, least time left {least}"
    )
    return Outcome(
        rows=[Row.of("4. token expiry under load", load, during, notes)],
        checks=[
            Check(
                "Signins ≈ users x T / (exp - margin) (±25 %)",
                f"{during['signin']:,} vs {expected:,.0f} expected ({got:.2f}x)",
                0.75 <= got <= 1.25,
            ),
            Check(
                "No response carried an expired token",
                f"{samples.expired} of {samples.checked:,} sampled"
                f" ({samples.failed} failed, {samples.unreadable} unreadable)",
                samples.expired == 0 and samples.checked > 0 and samples.unreadable == 0,
            ),
        ],
    )


# --- 5. memory per cached token ------------------------------------------------------


async def memory(harness: Harness) -> Outcome:
    c = harness.config
    await harness.stack.configure(0.0, 0.0, LONG_TTL)  # latency would only slow the filling
    most = max(c.memory_counts)
    rss: dict[int, int] = {}
    errors = 0
    calls: Counter[str] = Counter()
    async with harness.stack.proxy(
        CACHE_MAX_ENTRIES=str(2 * most), PAGE_CACHE_TTL=str(LONG_TTL)
    ) as proxy:
        rss[0] = proxy.rss()
        filled = 0
        started = time.perf_counter()
        for count in sorted(c.memory_counts):
            cookies = harness.cookies(count - filled, MEMORY_USERS + filled)
            primed, primed_calls = await harness.prime(proxy, cookies)
            errors += primed.errors
            calls += primed_calls
            filled = count
            rss[count] = proxy.rss()
        elapsed = time.perf_counter() - started
    per_token = (rss[most] - rss[0]) / most
    sizes = "; ".join(f"{n:,} → {mib(size)}" for n, size in sorted(rss.items()))
    return Outcome(
        rows=[
            Row(
                f"5. memory: RSS with 0 … {most:,} cached tokens",
                rps=f"{most / elapsed:,.0f}",
                errors=f"{errors:,}",
                upstream=upstream_calls(calls),
                notes=f"{sizes}; {per_token:,.0f} bytes per cached token"
                " (req/s: filling, one new user per request, no upstream latency)",
            )
        ],
        checks=[
            Check(
                "≤ 1 KiB per cached token (memory store)",
                f"{per_token:,.0f} bytes ((RSS at {most:,} - RSS at 0) / {most:,})",
                per_token <= 1024,
            )
        ],
    )
