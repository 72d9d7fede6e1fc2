"""Scenario 7: one user's rate limit, shared by two proxy processes through Redis. One
client per process sends that user's requests back to back (`hammer`, tallying 200s,
429s and their Retry-After), started on a slot boundary of the sliding window
(`aligned`); `limits_outcome` judges the admitted total against the limit and the bound
the periodic sync allows.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Final

from bench.harness import LIMITS_USER, LONG_TTL, Harness
from bench.http import Connection, encode_request
from bench.loadgen import percentile
from bench.outcome import Outcome
from bench.processes import Server
from bench.redis_runs import forget
from bench.report import Check, Row, ms, upstream_calls
from widget_proxy.cache.counts import BUCKETS, admitted_at_most

RATE_LIMIT: Final = 60  # RATE_LIMIT_PER_MINUTE
RATE_PERIOD: Final = 60.0  # the limit's window, seconds
SYNC_INTERVAL: Final = 1.0  # RATE_LIMIT_SYNC_INTERVAL
LOOPBACK: Final = 0.01  # a sync's round trip to a Redis on loopback, at most
RETRY_AFTER: Final = (1, 65)  # seconds a 429's Retry-After may say


async def limits(harness: Harness) -> Outcome:
    c = harness.config
    name = f"7. rate limit shared by 2 processes (limit {RATE_LIMIT}/min, sync {SYNC_INTERVAL:g} s)"
    problem = await forget(c.redis_url)
    if problem is not None:
        return Outcome(rows=[Row(name, notes=f"skipped: {problem}")])
    await harness.latency(LONG_TTL)
    cookie = harness.cookies(1, LIMITS_USER)[0]

    def proxy() -> AbstractAsyncContextManager[Server]:
        # RATE_LIMIT_IP_PER_MINUTE stays unlimited, as the stack sets it.
        return harness.stack.proxy(
            CACHE_URL=c.redis_url,
            RATE_LIMIT_PER_MINUTE=str(RATE_LIMIT),
            RATE_LIMIT_SYNC_INTERVAL=f"{SYNC_INTERVAL:g}",
            PAGE_CACHE_TTL=str(LONG_TTL),
        )

    try:
        async with proxy() as first, proxy() as second:
            await aligned(c.limits_duration)
            before = await harness.stack.calls()
            tallies = await asyncio.gather(
                *(hammer(p.port, cookie, c.limits_duration) for p in (first, second))
            )
            calls = await harness.stack.calls() - before
    finally:
        await forget(c.redis_url)
    return limits_outcome(name, list(tallies), calls, c.quick)


@dataclass
class Tally:
    """What one process answered one user's back-to-back requests."""

    admitted: int = 0  # 200
    refused: int = 0  # 429
    bad_retry_after: int = 0  # 429s whose Retry-After is missing or out of range
    other: int = 0  # any other status, or a socket error
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        requests = self.admitted + self.refused + self.other
        return requests / self.seconds if self.seconds > 0 else 0.0


async def aligned(seconds: float) -> None:
    """Start a run longer than the window minus one slot on a slot's boundary.

    The limit counts in `BUCKETS` slots, the oldest one partly (as it slides out).
    A run that starts inside a slot would see that slot start to slide out before a
    full period has passed, and be admitted more than the limit within the run.
    """
    width = RATE_PERIOD / BUCKETS
    if seconds <= RATE_PERIOD - width:
        return
    await asyncio.sleep(width - time.time() % width + 0.05)


async def hammer(port: int, cookie: str, seconds: float) -> Tally:
    """GET /widget for `seconds`, one request after the other on one keep-alive connection."""
    raw = encode_request(port, "/widget", {"Cookie": cookie})
    tally = Tally()
    started = time.perf_counter()
    deadline = started + seconds
    connection: Connection | None = None
    try:
        while time.perf_counter() < deadline:
            try:
                if connection is None:
                    connection = await Connection.open(port)
                reply = await connection.send(raw)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                tally.other += 1
                if connection is not None:
                    await connection.close()
                connection = None
                continue
            tally.latencies.append(reply.elapsed)
            headers = dict(reply.headers)
            if reply.status == 200:
                tally.admitted += 1
            elif reply.status == 429:
                tally.refused += 1
                wait = headers.get("retry-after", "")
                if not (wait.isdigit() and RETRY_AFTER[0] <= int(wait) <= RETRY_AFTER[1]):
                    tally.bad_retry_after += 1
            else:
                tally.other += 1
            if headers.get("connection", "").lower() == "close":
                await connection.close()
                connection = None
    finally:
        if connection is not None:
            await connection.close()
    tally.seconds = time.perf_counter() - started
    return tally


def limits_outcome(name: str, tallies: list[Tally], calls: Counter[str], quick: bool) -> Outcome:
    """Scenario 7's row and checks: admitted against the limit and its documented bound.

    Over a period each process admits at most what its view leaves, and the other,
    before this one sees it (two intervals and three round trips, Redis on loopback),
    at most its request rate times that and never more than the limit
    (`counts.admitted_at_most`).
    """
    admitted = sum(t.admitted for t in tallies)
    refused = sum(t.refused for t in tallies)
    bad = sum(t.bad_retry_after for t in tallies)
    other = sum(t.other for t in tallies)
    seconds = max(t.seconds for t in tallies)
    rates = [t.rate for t in tallies]
    bound = admitted_at_most(
        RATE_LIMIT, processes=2, rate=max(rates), interval=SYNC_INTERVAL, round_trip=LOOPBACK
    )
    latencies = sorted(x for t in tallies for x in t.latencies)
    within = RATE_LIMIT <= admitted <= bound
    # A quick run may be too short (or its loops too slow) to reach the limit at all.
    met = None if quick and admitted < RATE_LIMIT else within
    per_process = " and ".join(f"{r:,.0f}" for r in rates)
    split = " + ".join(f"{t.admitted:,}" for t in tallies)
    notes = (
        f"1 user, 2 processes sharing Redis, {seconds:.0f} s: {admitted:,} admitted (200;"
        f" {split}), {refused:,} refused (429, {bad} without a Retry-After of"
        f" {RETRY_AFTER[0]} to {RETRY_AFTER[1]} s); {per_process} req/s per process; bound"
        f" {RATE_LIMIT} + min({RATE_LIMIT}, {max(rates):,.0f} req/s x (2 x {SYNC_INTERVAL:g} s"
        f" + 3 x {LOOPBACK:g} s) + 1) = {bound:,}"
    )
    return Outcome(
        rows=[
            Row(
                name,
                rps=f"{sum(rates):,.0f}",
                p50=ms(percentile(latencies, 50)),
                p99=ms(percentile(latencies, 99)),
                errors=f"{other:,}",
                upstream=upstream_calls(calls),
                notes=notes,
            )
        ],
        checks=[
            Check(
                "rate limit: admitted between the limit and the bound",
                f"{admitted:,} admitted, limit {RATE_LIMIT}, bound {bound:,}",
                met,
            ),
            Check(
                f"rate limit: admitted in {seconds:.0f} s by 2 processes (limit {RATE_LIMIT})",
                f"{admitted:,} ({split})",
                None,
            ),
            Check(
                f"Every 429 carries a Retry-After of {RETRY_AFTER[0]} to {RETRY_AFTER[1]} s",
                f"{bad} of {refused:,} without",
                bad == 0 if refused else None,
            ),
        ],
    )
