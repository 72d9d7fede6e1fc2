"""Scenario 1e (issue 26): one widget's warm path alone, and mounted beside another.

Both as `widget-proxy serve` runs them, at its defaults (`LOG_LEVEL=INFO`, a JSON
request line each): the single-widget app at /widget, then `serve --config` with the
same widget at /rewards and a Hissuno chat at /support, its /rewards/widget measured.
A mounted widget's warm view is the single app's plus the mount's dispatch (one prefix
match): the two runs should be within the machine's noise of each other.
"""

from __future__ import annotations

from bench.harness import LONG_TTL, Harness, ratio
from bench.outcome import Outcome
from bench.report import Check, Row, ms, total_calls, upstream_calls

MOUNTED = "/rewards/widget"


async def mounted(harness: Harness) -> Outcome:
    c = harness.config
    await harness.latency(LONG_TTL)
    cookies = harness.cookies(c.users)
    async with harness.stack.served(PAGE_CACHE_TTL=str(LONG_TTL)) as alone:
        await harness.prime(alone, cookies)
        single, single_calls = await harness.measure(alone, cookies, c.duration)
    async with harness.stack.served_widgets(PAGE_CACHE_TTL=str(LONG_TTL)) as two:
        _, warmed = await harness.prime(two, cookies, MOUNTED)
        both, both_calls = await harness.measure(two, cookies, c.duration, MOUNTED)
    rps, p99 = ratio(both.rps, single.rps), ratio(both.p99, single.p99)
    # Requests per core of the server: what a view costs, whatever else shares the cores.
    per_core = ratio(both.per_core or 0.0, single.per_core or 0.0)
    return Outcome(
        rows=[
            Row.of("1e. one widget: /widget (widget-proxy serve)", single, single_calls, ""),
            Row.of(
                "1e. two widgets: /rewards/widget (serve --config, a Hissuno chat beside)",
                both,
                both_calls,
                f"{c.users:,} users warmed first ({upstream_calls(warmed)}); two / one:"
                f" {rps:.2f}x req/s, {per_core:.2f}x req/s per server core, {p99:.2f}x p99",
            ),
        ],
        checks=[
            Check(
                "Mounted beside another ≥ 0.9 x the widget alone's req/s per server core",
                f"{per_core:.2f}x (req/s {both.rps:,.0f} vs {single.rps:,.0f})",
                per_core >= 0.9,
            ),
            Check(
                "Mounted p99 ≤ 1.5 x the widget alone's",
                f"{p99:.2f}x ({ms(both.p99)} vs {ms(single.p99)})",
                p99 <= 1.5,
            ),
            Check(
                "Zero upstream calls during either warm run",
                f"{upstream_calls(single_calls)}; {upstream_calls(both_calls)}",
                total_calls(single_calls) + total_calls(both_calls) == 0,
            ),
        ],
    )
