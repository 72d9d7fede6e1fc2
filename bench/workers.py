"""Scenarios 6, 6b and 6c: several uvicorn workers sharing one Redis, then the same run
over a Redis Sentinel and a Redis Cluster the benchmark starts for itself
(bench.topologies), each compared with the single Redis of the same run. They count
one signin per user across the workers, and report what the highly available
deployments cost in req/s and latency.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Final

from bench import topologies
from bench.harness import Harness, ratio
from bench.outcome import Outcome
from bench.redis_runs import over_redis
from bench.report import CLUSTER, SENTINEL, WORKERS, Check, Row, upstream_calls

# The highly available deployments, measured beside the single Redis: the row's number,
# what it is, and how the benchmark starts it (bench.topologies).
TOPOLOGIES: Final = (
    ("6b", "Redis Sentinel (master, replica, 3 sentinels)", SENTINEL, topologies.sentinel),
    ("6c", "Redis Cluster (3 masters)", CLUSTER, topologies.cluster),
)


async def workers(harness: Harness) -> Outcome:
    """6 on the single Redis, then 6b on a Sentinel and 6c on a Cluster, side by side."""
    outcome = await workers_single(harness)
    for number, what, part, start in TOPOLOGIES:
        print(f"bench: workers over {what} …", file=sys.stderr, flush=True)
        more = await workers_over(harness, number, what, part, start)
        outcome.rows += more.rows
        outcome.checks += more.checks
        outcome.loads.update(more.loads)
        outcome.failed = outcome.failed or more.failed
    return outcome


async def workers_single(harness: Harness) -> Outcome:
    c = harness.config
    name = f"6. warm path: {c.workers} workers + Redis"
    run = await over_redis(harness, c.workers, "proxy-workers-redis")
    if isinstance(run, str):
        return Outcome(rows=[Row(name, notes=f"skipped: {run}")])
    primed, warmed, load, during = run
    harness.workers_warm = load
    per_user = (warmed["signin"] + during["signin"]) / c.users
    redis = ratio(load.rps, harness.redis_warm.rps) if harness.redis_warm else None
    memory = ratio(load.rps, harness.proxy_warm.rps) if harness.proxy_warm else None
    vs_redis = "n/a (run with the redis scenario)" if redis is None else f"{redis:.2f}x"
    vs_memory = "n/a (run with the warm scenario)" if memory is None else f"{memory:.2f}x"
    generator = "wrk" if harness.loadgen.name.startswith("wrk") else "the load generator"
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
    harness: Harness,
    number: str,
    what: str,
    part: str,
    start: Callable[[Path], AbstractAsyncContextManager[str]],
) -> Outcome:
    """The workers' warm run over a deployment the benchmark starts for it, against
    scenario 6's single Redis of the same run."""
    c = harness.config
    name = f"{number}. warm path: {c.workers} workers + {what}"
    folder = harness.stack.workdir / f"redis-{part}"
    try:
        async with start(folder) as url:
            run = await over_redis(harness, c.workers, f"proxy-workers-{part}", url)
    except topologies.TopologyUnavailable as exc:
        return Outcome(rows=[Row(name, notes=f"skipped: {exc}")])
    except topologies.TopologyFailed as exc:
        traceback.print_exc(file=sys.stderr)
        return Outcome(rows=[Row(name, notes=f"FAILED: {exc}".splitlines()[0])], failed=True)
    if isinstance(run, str):  # not from a deployment of our own: not expected
        return Outcome(rows=[Row(name, notes=f"skipped: {run}")])
    primed, warmed, load, during = run
    per_user = (warmed["signin"] + during["signin"]) / c.users
    single = harness.workers_warm
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
