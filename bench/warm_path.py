"""Scenarios 1, 1b and 2: the warm path (every token and the page cached, one worker)
measured against what bounds it. Above, the limit: a bare Starlette route sending the
same bytes. Beside it, the same run with Redis as the store instead of memory. Below,
the vendor's naive recipe, a signin and a page fetch on every request. The warm run
recorded here is the baseline the later ratios divide by.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

from bench.harness import DEFAULT_TTL, LONG_TTL, Harness, ratio
from bench.http import fetch
from bench.loadgen import LoadResult
from bench.outcome import Outcome
from bench.redis_runs import over_redis
from bench.report import (
    LIMIT,
    NAIVE,
    PROXY,
    REDIS,
    REDIS_MEMORY,
    Check,
    Row,
    cores,
    ms,
    total_calls,
    upstream_calls,
)
from bench.stack import SERVE_HTTP

UVICORN_HEADERS: Final = frozenset({"date", "server", "content-length", "connection"})


# --- 1. warm path, side by side with the limit --------------------------------


async def warm(harness: Harness) -> Outcome:
    c = harness.config
    await harness.latency(LONG_TTL)
    cookies = harness.cookies(c.users)
    async with harness.stack.proxy(PAGE_CACHE_TTL=str(LONG_TTL)) as proxy:
        primed, warmed = await harness.prime(proxy, cookies)
        page = await fetch(proxy.port, "/widget", {"Cookie": cookies[0]})
        load, during = await harness.measure(proxy, cookies, c.duration)
        await harness.profiled(proxy, cookies, "proxy-warm")
    harness.proxy_warm = load
    # The limit sends what the proxy sent, minus what uvicorn adds by itself and the
    # `connection: close` it echoed to our one-shot request.
    headers = [(k, v) for k, v in page.headers if k not in UVICORN_HEADERS]
    async with harness.stack.limit(page.body, headers) as limit:
        bound, bound_calls = await harness.measure(limit, cookies, c.duration)
        await harness.profiled(limit, cookies, "limit-warm")
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


# --- 1c. the warm path under each HTTP protocol ----------------------------------

# uvicorn's httptools (unbounded heads), serve's bounded httptools, h11 (bounded by
# uvicorn's h11_max_incomplete_event_size, 16 KiB unless set): what the head bound costs.
# Side by side in one run, in turn, so that what else the machine does falls on each.
PROTOCOLS: Final = (
    ("httptools", "uvicorn's httptools"),
    (SERVE_HTTP, "bounded httptools (serve)"),
    ("h11", "h11"),
)


ROUNDS: Final = 2  # each protocol in turn, twice: the best run of each is compared


async def protocols(harness: Harness) -> Outcome:
    c = harness.config
    await harness.latency(LONG_TTL)
    cookies = harness.cookies(c.users)
    best: dict[str, tuple[LoadResult, Counter[str]]] = {}
    for _ in range(1 if c.quick else ROUNDS):  # a smoke run: each once
        for http, label in PROTOCOLS:
            async with harness.stack.proxy(http=http, PAGE_CACHE_TTL=str(LONG_TTL)) as proxy:
                await harness.prime(proxy, cookies)
                load, during = await harness.measure(proxy, cookies, c.duration)
            if label not in best or load.rps > best[label][0].rps:
                best[label] = (load, during)
    loads = [(label, *best[label]) for _, label in PROTOCOLS]
    base = loads[0][1]
    rows = [
        Row.of(
            f"1c. warm path: proxy under {label}",
            load,
            during,
            f"/ uvicorn's httptools: {ratio(load.rps, base.rps):.2f}x req/s,"
            f" {ratio(load.p99, base.p99):.2f}x p99",
        )
        for label, load, during in loads
    ]
    bounded = loads[1][1]
    return Outcome(
        rows=rows,
        checks=[
            Check(
                "Bounded httptools / uvicorn's httptools, req/s",
                f"{ratio(bounded.rps, base.rps):.2f}x ({bounded.rps:,.0f} vs {base.rps:,.0f})",
                None,
            )
        ],
    )


# --- 1b. the warm path with Redis as the store, one worker -----------------------

# The memory store and Redis in turn, three times (once with --quick), each proxy warmed
# once and kept, the best run of each compared: what else the shared machine does then
# falls on both, as in 1c, not on whichever of two runs minutes apart it happened to meet.
REDIS_ROUNDS: Final = 3


async def warm_redis(harness: Harness) -> Outcome:
    c = harness.config
    name = "1b. warm path: 1 worker + Redis"
    rounds = 1 if c.quick else REDIS_ROUNDS
    cookies = harness.cookies(c.users)
    await harness.latency(LONG_TTL)
    memory_runs: list[LoadResult] = []
    async with harness.stack.proxy(PAGE_CACHE_TTL=str(LONG_TTL)) as on_memory:
        await harness.prime(on_memory, cookies)

        async def memory_run() -> None:
            memory_runs.append((await harness.measure(on_memory, cookies, c.duration))[0])

        best = await over_redis(harness, 1, "proxy-redis", rounds=rounds, beside=memory_run)
    if isinstance(best, str):
        return Outcome(rows=[Row(name, notes=f"skipped: {best}")])
    memory = max(memory_runs, key=lambda run: run.rps)
    primed, warmed, load, during = best
    harness.redis_warm = load
    rps, p99 = ratio(load.rps, memory.rps), ratio(load.p99, memory.p99)
    notes = (
        f"{c.users:,} users warmed first ({upstream_calls(warmed)}, {primed.errors} errors);"
        f" best of {rounds} runs each, memory store and Redis in turn (memory's best:"
        f" {memory.rps:,.0f} req/s, p99 {ms(memory.p99)}{_comma(cores(memory))});"
        f" Redis / memory store: {rps:.2f}x req/s, {p99:.2f}x p99"
    )
    return Outcome(
        rows=[Row.of(name, load, during, notes)],
        checks=[
            Check(
                "Redis / memory, req/s ≥ 0.9x",
                f"{rps:.2f}x ({load.rps:,.0f} vs {memory.rps:,.0f})",
                rps >= 0.9,
            ),
            Check(
                "Redis / memory, p99 ≤ 1.3x",
                f"{p99:.2f}x ({ms(load.p99)} vs {ms(memory.p99)})",
                p99 <= 1.3,
            ),
        ],
        loads={REDIS: load, REDIS_MEMORY: memory},
    )


def _comma(text: str) -> str:
    return f", {text}" if text else ""


# --- 2. the vendor's recipe on every request ------------------------------------


async def naive(harness: Harness) -> Outcome:
    c = harness.config
    await harness.latency(DEFAULT_TTL)
    cookies = harness.cookies(c.users)
    async with harness.stack.naive() as naive:
        load, during = await harness.measure(naive, cookies, c.duration)
    times = ratio(harness.proxy_warm.rps, load.rps) if harness.proxy_warm else None
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
