"""Scenario 1d: the warm path as users run it, against the bare route as users run it.

The proxy as `widget-proxy serve` starts it, at its defaults: `LOG_LEVEL=INFO`, one
JSON request line per request on stderr (here a file). The limit is scenario 1's bare
Starlette route sending the same bytes, under uvicorn's own defaults: its access log
on, one line per request on stderr too. Scenario 1 measures both quiet (no request
lines); this pair is what a merchant compares. Each log is counted afterwards: a line
per request, or the pair measured something else.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from bench.harness import LONG_TTL, Harness, ratio
from bench.http import fetch
from bench.outcome import Outcome
from bench.processes import Server
from bench.report import SERVED, SERVED_LIMIT, Check, Row, ms, upstream_calls
from bench.warm_path import UVICORN_HEADERS

PROXY_LINE: Final = '"path": "/widget"'  # serve's JSON request lines (any version's)
ACCESS_LINE: Final = '"GET /widget HTTP/1.1" 200'  # uvicorn's access log
DROPPED: Final = re.compile(r"^widget_proxy_log_lines_dropped_total (\S+)$", re.MULTILINE)


async def served(harness: Harness) -> Outcome:
    c = harness.config
    await harness.latency(LONG_TTL)
    cookies = harness.cookies(c.users)
    async with harness.stack.served(PAGE_CACHE_TTL=str(LONG_TTL)) as proxy:
        primed, warmed = await harness.prime(proxy, cookies)
        page = await fetch(proxy.port, "/widget", {"Cookie": cookies[0]})
        load, during = await harness.measure(proxy, cookies, c.duration)
        dropped = await dropped_lines(proxy)
    proxy_lines = logged(proxy.log, PROXY_LINE)  # (stopped: its last lines are written)
    headers = [(k, v) for k, v in page.headers if k not in UVICORN_HEADERS]
    async with harness.stack.limit(page.body, headers, as_served=True) as limit:
        bound, bound_calls = await harness.measure(limit, cookies, c.duration)
    limit_lines = logged(limit.log, ACCESS_LINE)
    rps, p99 = ratio(load.rps, bound.rps), ratio(load.p99, bound.p99)
    # Every request the proxy answered was logged: the priming pass, the page, the run.
    answered = primed.requests + 1 + load.requests
    return Outcome(
        rows=[
            Row.of(
                "1d. as served: proxy (widget-proxy serve, LOG_LEVEL=INFO)",
                load,
                during,
                f"{c.users:,} users warmed first ({upstream_calls(warmed)}); page"
                f" {len(page.body):,} bytes, status {page.status}; {proxy_lines:,} JSON"
                f" request lines for {answered:,} answers, {dropped:,.0f} dropped",
            ),
            Row.of(
                "1d. as served: limit (uvicorn's defaults, access log on)",
                bound,
                bound_calls,
                f"proxy / limit: {rps:.2f}x req/s, {p99:.2f}x p99;"
                f" {limit_lines:,} access log lines for {bound.requests:,} answers",
            ),
        ],
        checks=[
            Check(
                "As served ≥ 0.8 x the limit's req/s (both logging each request)",
                f"{rps:.2f}x ({load.rps:,.0f} vs {bound.rps:,.0f})",
                rps >= 0.8,
            ),
            Check(
                "As served p99 ≤ 2 x the limit's p99",
                f"{p99:.2f}x ({ms(load.p99)} vs {ms(bound.p99)})",
                p99 <= 2.0,
            ),
            Check(
                "As served: a log line for every answer, on both sides",
                f"proxy {proxy_lines:,} of ≥ {answered:,} ({dropped:,.0f} dropped),"
                f" limit {limit_lines:,} of ≥ {bound.requests:,}",
                proxy_lines + dropped >= answered and limit_lines >= bound.requests,
            ),
        ],
        loads={SERVED: load, SERVED_LIMIT: bound},
    )


async def dropped_lines(proxy: Server) -> float:
    """The request lines the proxy's writer dropped (its metric; none before it had one:
    `logging` waited for the stream instead)."""
    reply = await fetch(proxy.port, "/metrics")
    found = DROPPED.search(reply.body.decode())
    return float(found.group(1)) if found else 0.0


def logged(log: Path, mark: str) -> int:
    with log.open(errors="replace") as lines:
        return sum(mark in line for line in lines)
