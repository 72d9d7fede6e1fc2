"""The scenarios of issue 7 (and 1b, 7 of the warm-path issue). Each starts the servers
it needs, measures, stops them, and returns its table rows, the targets it can judge and
its load runs by the part they play in a comparison (for `--plot`).
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bench import cpu, topologies, users
from bench.config import Config
from bench.http import Connection, Reply, burst, encode_request, fetch
from bench.loadgen import LoadGenerator, LoadResult, Target, drive, percentile
from bench.processes import Server
from bench.profile import py_spy, record, write_summary
from bench.report import (
    CLUSTER,
    LIMIT,
    NAIVE,
    PROXY,
    REDIS,
    SENTINEL,
    WORKERS,
    Check,
    Row,
    ms,
    total_calls,
    upstream_calls,
)
from bench.sampler import sample
from bench.stack import Stack
from widget_proxy.cache import redacted_url
from widget_proxy.cache.counts import BUCKETS

# Warm runs measure the warm path, so nothing may go stale during them: the stand-in
# issues hour-long tokens and the page stays fresh as long (at the defaults a page
# is revalidated once a minute, in the background, with one conditional GET).
LONG_TTL: Final = 3600
DEFAULT_TTL: Final = 300  # the stand-in's own default
REDIS_PREFIX: Final = "widget-proxy:"
PROFILE_SECONDS: Final = 10
UVICORN_HEADERS: Final = frozenset({"date", "server", "content-length", "connection"})

# Users of their own for the scenarios that count first-time signins.
COLD_USERS: Final = 1_000_000
EXPIRY_USERS: Final = 2_000_000
MEMORY_USERS: Final = 3_000_000
LIMITS_USER: Final = 4_000_000

# Scenario 7: one user's limit, shared by two processes through Redis.
RATE_LIMIT: Final = 60  # RATE_LIMIT_PER_MINUTE
RATE_PERIOD: Final = 60.0  # the limit's window, seconds
SYNC_INTERVAL: Final = 1.0  # RATE_LIMIT_SYNC_INTERVAL
RETRY_AFTER: Final = (1, 65)  # seconds a 429's Retry-After may say


@dataclass
class Outcome:
    rows: list[Row] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    loads: dict[str, LoadResult] = field(default_factory=dict)  # by part (bench.report)
    failed: bool = False  # a part broke (its row says FAILED) though the others ran


# Scenario 6's highly available deployments, measured beside its single Redis: the row's
# number, what it is, and how the benchmark starts it (bench.topologies).
TOPOLOGIES: Final = (
    ("6b", "Redis Sentinel (master, replica, 3 sentinels)", SENTINEL, topologies.sentinel),
    ("6c", "Redis Cluster (3 masters)", CLUSTER, topologies.cluster),
)


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("inf")


def mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"


class Scenarios:
    def __init__(self, config: Config, stack: Stack, loadgen: LoadGenerator) -> None:
        self.config = config
        self.stack = stack
        self.loadgen = loadgen
        self.proxy_warm: LoadResult | None = None  # scenario 1's, for the other ratios
        self.redis_warm: LoadResult | None = None  # scenario 1b's, for scenario 6
        self.workers_warm: LoadResult | None = None  # scenario 6's, for 6b and 6c

    def by_name(self, name: str) -> Callable[[], Awaitable[Outcome]]:
        scenarios: dict[str, Callable[[], Awaitable[Outcome]]] = {
            "warm": self.warm,
            "redis": self.warm_redis,
            "naive": self.naive,
            "cold": self.cold,
            "expiry": self.expiry,
            "memory": self.memory,
            "workers": self.workers,
            "limits": self.limits,
        }
        return scenarios[name]

    # --- helpers ------------------------------------------------------------------

    def cookies(self, count: int, first: int = 0) -> list[str]:
        return users.cookies(self.stack.keys.session_secret, count, first)

    async def measure(
        self, server: Server, cookies: Sequence[str], seconds: float
    ) -> tuple[LoadResult, Counter[str]]:
        """One load run, and the upstream calls counted while it ran."""
        before = await self.stack.calls()
        busy = cpu.sample()
        load = await self.loadgen.run(
            Target(server.port), cookies, seconds, self.config.connections
        )
        load = replace(load, others=cpu.others(busy, cpu.sample()))
        return load, await self.stack.calls() - before

    async def prime(
        self, server: Server, cookies: Sequence[str]
    ) -> tuple[LoadResult, Counter[str]]:
        """One request per cookie, so that every token (and the page) is cached."""
        before = await self.stack.calls()
        load = await drive(Target(server.port), cookies, min(self.config.connections, len(cookies)))
        return load, await self.stack.calls() - before

    async def profiled(self, server: Server, cookies: Sequence[str], label: str) -> None:
        """With `--profile`: one more load run, sampled by py-spy (see bench.profile)."""
        folder = self.config.profile
        if folder is None:
            return
        binary = py_spy()
        if binary is None:
            raise RuntimeError("--profile needs py-spy (pip install py-spy)")
        raw = folder / f"{label}.raw"
        target = Target(server.port)
        load = asyncio.create_task(
            self.loadgen.run(target, cookies, PROFILE_SECONDS + 2, self.config.connections)
        )
        try:
            await asyncio.sleep(1.0)  # sample the server under load only
            pids = server.workers()
            await record(binary, pids, PROFILE_SECONDS, raw)
        finally:
            result = await load  # bounded: it ends by itself, a few seconds on
        heading = f"{label}: {result.rps:,.0f} req/s while profiled (py-spy slows it)"
        write_summary(raw, heading, result.rps, len(pids))

    async def latency(self, token_ttl: int) -> None:
        c = self.config
        await self.stack.configure(c.signin_delay, c.page_delay, token_ttl)

    # --- 1. warm path, side by side with the limit --------------------------------

    async def warm(self) -> Outcome:
        c = self.config
        await self.latency(LONG_TTL)
        cookies = self.cookies(c.users)
        async with self.stack.proxy(PAGE_CACHE_TTL=str(LONG_TTL)) as proxy:
            primed, warmed = await self.prime(proxy, cookies)
            page = await fetch(proxy.port, "/widget", {"Cookie": cookies[0]})
            load, during = await self.measure(proxy, cookies, c.duration)
            await self.profiled(proxy, cookies, "proxy-warm")
        self.proxy_warm = load
        # The limit sends what the proxy sent, minus what uvicorn adds by itself and the
        # `connection: close` it echoed to our one-shot request.
        headers = [(k, v) for k, v in page.headers if k not in UVICORN_HEADERS]
        async with self.stack.limit(page.body, headers) as limit:
            bound, bound_calls = await self.measure(limit, cookies, c.duration)
            await self.profiled(limit, cookies, "limit-warm")
        rps, p99 = ratio(load.rps, bound.rps), ratio(load.p99, bound.p99)
        warm_notes = (
            f"{c.users:,} users warmed first ({upstream_calls(warmed)},"
            f" {primed.errors} errors); page {len(page.body):,} bytes, status {page.status}"
        )
        return Outcome(
            rows=[
                Row.of(f"1. warm path: proxy ({c.users:,} users)", load, during, warm_notes),
                Row.of(
                    "1. warm path: limit (bare Starlette route, same bytes)",
                    bound,
                    bound_calls,
                    f"proxy / limit: {rps:.2f}x req/s, {p99:.2f}x p99",
                ),
            ],
            checks=[
                Check(
                    "Warm path ≥ 0.8 x the limit's req/s",
                    f"{rps:.2f}x ({load.rps:,.0f} vs {bound.rps:,.0f})",
                    rps >= 0.8,
                ),
                Check(
                    "Warm path p99 ≤ 2 x the limit's p99",
                    f"{p99:.2f}x ({ms(load.p99)} vs {ms(bound.p99)})",
                    p99 <= 2.0,
                ),
                Check(
                    "Zero upstream calls during the warm run",
                    upstream_calls(during),
                    total_calls(during) == 0,
                ),
                Check(
                    f"Exactly U signins for U users (warm-up, U = {c.users:,})",
                    f"{warmed['signin']:,} signins",
                    warmed["signin"] == c.users,
                ),
            ],
            loads={PROXY: load, LIMIT: bound},
        )

    # --- 1b. the warm path with Redis as the store, one worker -----------------------

    async def over_redis(
        self, workers: int, label: str, url: str | None = None
    ) -> tuple[LoadResult, Counter[str], LoadResult, Counter[str]] | str:
        """The warm run with Redis as the store: (warm-up, its calls, load, its calls),
        or why Redis can't be used. `url`: a deployment of the run's own (fresh, and
        thrown away after), instead of the shared `--redis-url` (cleaned before and after)."""
        c = self.config
        shared = url is None
        url = c.redis_url if url is None else url
        problem = await forget(url) if shared else None
        if problem is not None:
            return problem
        await self.latency(LONG_TTL)
        cookies = self.cookies(c.users)
        try:
            async with self.stack.proxy(
                workers=workers, CACHE_URL=url, PAGE_CACHE_TTL=str(LONG_TTL)
            ) as proxy:
                if workers > 1:
                    await asyncio.sleep(1.0)  # uvicorn starts its workers one after the other
                primed, warmed = await self.prime(proxy, cookies)
                load, during = await self.measure(proxy, cookies, c.duration)
                await self.profiled(proxy, cookies, label)
        finally:
            if shared:
                await forget(url)
        return primed, warmed, load, during

    async def warm_redis(self) -> Outcome:
        c = self.config
        name = "1b. warm path: 1 worker + Redis"
        run = await self.over_redis(1, "proxy-redis")
        if isinstance(run, str):
            return Outcome(rows=[Row(name, notes=f"skipped: {run}")])
        primed, warmed, load, during = run
        self.redis_warm = load
        memory = self.proxy_warm
        rps = None if memory is None else ratio(load.rps, memory.rps)
        p99 = None if memory is None else ratio(load.p99, memory.p99)
        if memory is None:
            vs_memory = "n/a (run with the warm scenario)"
            rps_text = p99_text = vs_memory
        else:
            vs_memory = f"{rps:.2f}x req/s, {p99:.2f}x p99"
            rps_text = f"{rps:.2f}x ({load.rps:,.0f} vs {memory.rps:,.0f})"
            p99_text = f"{p99:.2f}x ({ms(load.p99)} vs {ms(memory.p99)})"
        notes = (
            f"{c.users:,} users warmed first ({upstream_calls(warmed)}, {primed.errors} errors);"
            f" Redis / memory store: {vs_memory}"
        )
        return Outcome(
            rows=[Row.of(name, load, during, notes)],
            checks=[
                Check(
                    "Redis / memory, req/s ≥ 0.9x", rps_text, None if rps is None else rps >= 0.9
                ),
                Check("Redis / memory, p99 ≤ 1.3x", p99_text, None if p99 is None else p99 <= 1.3),
            ],
            loads={REDIS: load},
        )

    # --- 2. the vendor's recipe on every request ------------------------------------

    async def naive(self) -> Outcome:
        c = self.config
        await self.latency(DEFAULT_TTL)
        cookies = self.cookies(c.users)
        async with self.stack.naive() as naive:
            load, during = await self.measure(naive, cookies, c.duration)
        times = ratio(self.proxy_warm.rps, load.rps) if self.proxy_warm else None
        measured = "n/a (run with the warm scenario)" if times is None else f"{times:,.1f}x"
        return Outcome(
            rows=[
                Row.of(
                    "2. naive recipe (signin + page per request)",
                    load,
                    during,
                    f"proxy / naive: {measured} req/s",
                )
            ],
            checks=[
                Check(
                    "≥ 20 x the naive recipe's req/s",
                    measured,
                    None if times is None else times >= 20,
                )
            ],
            loads={NAIVE: load},
        )

    # --- 3. cold bursts ---------------------------------------------------------------

    async def cold(self) -> Outcome:
        c = self.config
        await self.latency(DEFAULT_TTL)
        one = self.cookies(1, COLD_USERS)[0]
        many = self.cookies(c.burst, COLD_USERS + 1)
        async with self.stack.proxy() as proxy:  # fresh: nothing cached
            single, single_calls = await self.burst(proxy, [one] * c.burst)
            spread, spread_calls = await self.burst(proxy, many)
        return Outcome(
            rows=[
                self.burst_row(f"3. cold burst: 1 user x {c.burst:,}", single, single_calls),
                self.burst_row(f"3. cold burst: {c.burst:,} users x 1", spread, spread_calls),
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

    async def burst(
        self, server: Server, cookies: list[str]
    ) -> tuple[tuple[list[Reply], float, int], Counter[str]]:
        before = await self.stack.calls()
        started = time.perf_counter()
        replies = await burst(server.port, "/widget", cookies)
        elapsed = time.perf_counter() - started
        return (replies, elapsed, len(cookies)), await self.stack.calls() - before

    @staticmethod
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

    async def expiry(self) -> Outcome:
        c = self.config
        await self.latency(c.token_ttl)
        cookies = self.cookies(c.expiry_users, EXPIRY_USERS)
        margin = f"{c.refresh_margin:g}"
        async with self.stack.proxy(TOKEN_REFRESH_MARGIN=margin) as proxy:
            await self.prime(proxy, cookies)
            stop = asyncio.Event()
            checker = asyncio.create_task(sample(Target(proxy.port), cookies, stop))
            try:
                load, during = await self.measure(proxy, cookies, c.expiry_duration)
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

    async def memory(self) -> Outcome:
        c = self.config
        await self.stack.configure(0.0, 0.0, LONG_TTL)  # latency would only slow the filling
        most = max(c.memory_counts)
        rss: dict[int, int] = {}
        errors = 0
        calls: Counter[str] = Counter()
        async with self.stack.proxy(
            CACHE_MAX_ENTRIES=str(2 * most), PAGE_CACHE_TTL=str(LONG_TTL)
        ) as proxy:
            rss[0] = proxy.rss()
            filled = 0
            started = time.perf_counter()
            for count in sorted(c.memory_counts):
                cookies = self.cookies(count - filled, MEMORY_USERS + filled)
                primed, primed_calls = await self.prime(proxy, cookies)
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

    # --- 6. several workers sharing Redis ----------------------------------------------

    async def workers(self) -> Outcome:
        """6 on the single Redis, then 6b on a Sentinel and 6c on a Cluster, side by side."""
        outcome = await self.workers_single()
        for number, what, part, start in TOPOLOGIES:
            print(f"bench: workers over {what} …", file=sys.stderr, flush=True)
            more = await self.workers_over(number, what, part, start)
            outcome.rows += more.rows
            outcome.checks += more.checks
            outcome.loads.update(more.loads)
            outcome.failed = outcome.failed or more.failed
        return outcome

    async def workers_single(self) -> Outcome:
        c = self.config
        name = f"6. warm path: {c.workers} workers + Redis"
        run = await self.over_redis(c.workers, "proxy-workers-redis")
        if isinstance(run, str):
            return Outcome(rows=[Row(name, notes=f"skipped: {run}")])
        primed, warmed, load, during = run
        self.workers_warm = load
        per_user = (warmed["signin"] + during["signin"]) / c.users
        redis = ratio(load.rps, self.redis_warm.rps) if self.redis_warm else None
        memory = ratio(load.rps, self.proxy_warm.rps) if self.proxy_warm else None
        vs_redis = "n/a (run with the redis scenario)" if redis is None else f"{redis:.2f}x"
        vs_memory = "n/a (run with the warm scenario)" if memory is None else f"{memory:.2f}x"
        generator = "wrk" if self.loadgen.name.startswith("wrk") else "the load generator"
        cores = os.cpu_count() or 1
        notes = (
            f"{c.users:,} users warmed first ({upstream_calls(warmed)}, {primed.errors} errors);"
            f" {per_user:.2f} signins per user; / 1 worker + Redis: {vs_redis} req/s;"
            f" / 1 worker, memory store: {vs_memory} req/s; {generator} and Redis share the"
            f" {cores} cores with the {c.workers} workers, so the cores, not the number of"
            " workers, bound req/s"
        )
        return Outcome(
            rows=[Row.of(name, load, during, notes)],
            checks=[
                Check(
                    f"{c.workers} workers + Redis: signins per user = 1",
                    f"{per_user:.2f}",
                    per_user == 1,
                ),
                Check(
                    f"{c.workers} workers + Redis ≥ 1 worker + Redis, req/s",
                    vs_redis,
                    None if redis is None else redis >= 1.0,
                ),
                Check(
                    f"{c.workers} workers + Redis / 1 worker (memory store), req/s",
                    vs_memory,
                    None,
                ),
            ],
            loads={WORKERS: load},
        )

    async def workers_over(
        self,
        number: str,
        what: str,
        part: str,
        start: Callable[[Path], AbstractAsyncContextManager[str]],
    ) -> Outcome:
        """The workers' warm run over a deployment the benchmark starts for it, against
        scenario 6's single Redis of the same run."""
        c = self.config
        name = f"{number}. warm path: {c.workers} workers + {what}"
        folder = self.stack.workdir / f"redis-{part}"
        try:
            async with start(folder) as url:
                run = await self.over_redis(c.workers, f"proxy-workers-{part}", url)
        except topologies.TopologyUnavailable as exc:
            return Outcome(rows=[Row(name, notes=f"skipped: {exc}")])
        except topologies.TopologyFailed as exc:
            traceback.print_exc(file=sys.stderr)
            return Outcome(rows=[Row(name, notes=f"FAILED: {exc}".splitlines()[0])], failed=True)
        if isinstance(run, str):  # not from a deployment of our own: not expected
            return Outcome(rows=[Row(name, notes=f"skipped: {run}")])
        primed, warmed, load, during = run
        per_user = (warmed["signin"] + during["signin"]) / c.users
        single = self.workers_warm
        if single is None:
            versus = "n/a (row 6, one Redis, did not run)"
            rps_text = versus
        else:
            rps = ratio(load.rps, single.rps)
            versus = (
                f"{rps:.2f}x req/s, {ratio(load.p50, single.p50):.2f}x p50,"
                f" {ratio(load.p99, single.p99):.2f}x p99"
            )
            rps_text = f"{rps:.2f}x ({load.rps:,.0f} vs {single.rps:,.0f})"
        servers = "5 redis-server processes" if part == SENTINEL else "3 redis-server processes"
        notes = (
            f"{c.users:,} users warmed first ({upstream_calls(warmed)}, {primed.errors} errors);"
            f" {per_user:.2f} signins per user; / {c.workers} workers + one Redis (row 6,"
            f" this run): {versus}; {servers} started by the benchmark on loopback, sharing"
            " the cores"
        )
        short = what.partition(" (")[0]
        return Outcome(
            rows=[Row.of(name, load, during, notes)],
            checks=[
                Check(
                    f"{c.workers} workers + {short}: signins per user = 1",
                    f"{per_user:.2f}",
                    per_user == 1,
                ),
                Check(f"{c.workers} workers: {short} / one Redis, req/s", rps_text, None),
            ],
            loads={part: load},
        )

    # --- 7. one user's rate limit, shared by two processes ----------------------------

    async def limits(self) -> Outcome:
        c = self.config
        name = (
            f"7. rate limit shared by 2 processes (limit {RATE_LIMIT}/min,"
            f" sync {SYNC_INTERVAL:g} s)"
        )
        problem = await forget(c.redis_url)
        if problem is not None:
            return Outcome(rows=[Row(name, notes=f"skipped: {problem}")])
        await self.latency(LONG_TTL)
        cookie = self.cookies(1, LIMITS_USER)[0]

        def proxy() -> AbstractAsyncContextManager[Server]:
            # RATE_LIMIT_IP_PER_MINUTE stays unlimited, as the stack sets it.
            return self.stack.proxy(
                CACHE_URL=c.redis_url,
                RATE_LIMIT_PER_MINUTE=str(RATE_LIMIT),
                RATE_LIMIT_SYNC_INTERVAL=f"{SYNC_INTERVAL:g}",
                PAGE_CACHE_TTL=str(LONG_TTL),
            )

        try:
            async with proxy() as first, proxy() as second:
                await aligned(c.limits_duration)
                before = await self.stack.calls()
                tallies = await asyncio.gather(
                    *(hammer(p.port, cookie, c.limits_duration) for p in (first, second))
                )
                calls = await self.stack.calls() - before
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

    Over a period each process admits at most what its view leaves, and the other, in
    one sync interval, at most its request rate times the interval and never more than
    the limit: the bound is the limit plus min(limit, faster rate x interval).
    """
    admitted = sum(t.admitted for t in tallies)
    refused = sum(t.refused for t in tallies)
    bad = sum(t.bad_retry_after for t in tallies)
    other = sum(t.other for t in tallies)
    seconds = max(t.seconds for t in tallies)
    rates = [t.rate for t in tallies]
    bound = RATE_LIMIT + min(RATE_LIMIT, math.ceil(max(rates) * SYNC_INTERVAL))
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
        f" {RATE_LIMIT} + min({RATE_LIMIT}, {max(rates):,.0f} req/s x {SYNC_INTERVAL:g} s)"
        f" = {bound:,}"
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
