"""The Markdown the benchmark prints: machine facts, one row per measurement, the targets."""

from __future__ import annotations

import os
import platform
import subprocess
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench.config import Config
from bench.loadgen import LoadResult
from bench.processes import REPO

# The load runs the plot compares (bench.plot), by the part they played in the run.
PROXY: Final = "proxy"  # scenario 1: one worker, memory store
LIMIT: Final = "limit"
SERVED: Final = "served"  # scenario 1d: `widget-proxy serve` at its defaults
SERVED_LIMIT: Final = "served-limit"  # … and the limit under uvicorn's defaults
NAIVE: Final = "naive"
REDIS: Final = "redis"  # scenario 1b: one worker, Redis
REDIS_MEMORY: Final = "redis-memory"  # … and the memory store beside it, in turn
WORKERS: Final = "workers"  # scenario 6: several workers, Redis
SENTINEL: Final = "sentinel"  # 6b: as many workers, a Redis Sentinel the bench starts
CLUSTER: Final = "cluster"  # 6c: as many workers, a Redis Cluster the bench starts


@dataclass(frozen=True, slots=True)
class Row:
    scenario: str
    rps: str = "-"
    p50: str = "-"
    p99: str = "-"
    errors: str = "-"
    upstream: str = "-"
    notes: str = ""

    @classmethod
    def of(cls, scenario: str, load: LoadResult, calls: Counter[str], notes: str = "") -> Row:
        return cls(
            scenario,
            rps=f"{load.rps:,.0f}",
            p50=ms(load.p50),
            p99=ms(load.p99),
            errors=f"{load.errors:,}",
            upstream=upstream_calls(calls),
            notes="; ".join(n for n in (notes, cores(load), others_of(load)) if n),
        )


@dataclass(frozen=True, slots=True)
class Check:
    target: str
    measured: str
    met: bool | None  # None: reported, no pass/fail bar


def cores(load: LoadResult) -> str:
    """The server's CPU: req/s per core is what a process of it serves."""
    if load.server_cores is None or load.per_core is None:
        return ""
    return f"server {load.server_cores:.2f} cores, {load.per_core:,.0f} req/s per core"


def others_of(load: LoadResult) -> str:
    return "" if load.others is None else others(load.others)


def others(cores: float) -> str:
    """What the rest of the machine did meanwhile: more than a little skews the row."""
    text = f"other programs used {cores:.2f} cores meanwhile"
    return f"**{text}**" if cores >= 0.1 else text


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def upstream_calls(calls: Counter[str]) -> str:
    """`0`, or the counts by kind: `signin 1, page 1`."""
    kinds = [(k, v) for k, v in sorted(calls.items()) if v and k != "page_not_modified"]
    if not kinds:
        return "0"
    text = ", ".join(f"{k} {v:,}" for k, v in kinds)
    if calls["page_not_modified"]:
        text += f" (of which 304: {calls['page_not_modified']:,})"
    return text


def total_calls(calls: Counter[str]) -> int:
    return sum(v for k, v in calls.items() if k != "page_not_modified")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*args: str) -> str:
    command = ["git", *args]  # git from PATH, fixed arguments
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=10, check=True)  # noqa: S603
    return done.stdout.strip()


def revision() -> str:
    """The commit measured, and whether app/ differs from it (read-only git calls)."""
    try:
        head = _git("rev-parse", "--short", "HEAD")
        # --no-optional-locks: status must not write the index behind anyone's back.
        changed = _git("--no-optional-locks", "status", "--porcelain", "--", "app")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return head + (" with uncommitted changes in app/" if changed else "")


def machine(generator: str, load_before: float) -> list[str]:
    return [
        f"- Cores: {os.cpu_count()} (`os.cpu_count()`); CPU: {cpu_model()}",
        f"- Python {platform.python_version()} on {platform.system()} {platform.release()}",
        f"- Load generator: {generator}",
        f"- Code: {revision()}",
        f"- Load average before the run: {load_before:.2f} (other work on the machine"
        " shares the cores with the benchmark)",
    ]


def render(
    config: Config,
    generator: str,
    rows: Sequence[Row],
    checks: Sequence[Check],
    seconds: float,
    load_before: float,
) -> str:
    mode = "quick smoke run: the numbers prove the benchmark works, not the proxy's speed"
    settings = (
        f"{config.users:,} users, {config.connections} connections,"
        f" {config.duration:g} s per warm run, upstream latency"
        f" signin {config.signin_delay * 1000:g} ms / page {config.page_delay * 1000:g} ms"
    )
    lines = [
        "## widget-proxy benchmark",
        "",
        *machine(generator, load_before),
        f"- Run: {settings}; took {seconds:.0f} s" + (f" ({mode})" if config.quick else ""),
        f"- Server: {config.server} (the proxy's, its limit's and the naive recipe's)",
        "",
        "| Scenario | req/s | p50 | p99 | errors | upstream calls | notes |",
        "|---|---:|---:|---:|---:|---|---|",
        *(cells(r.scenario, r.rps, r.p50, r.p99, r.errors, r.upstream, r.notes) for r in rows),
        "",
        "| Target | measured | met |",
        "|---|---|---|",
        *(cells(c.target, c.measured, verdict(c.met)) for c in checks),
        "",
    ]
    return "\n".join(lines)


def verdict(met: bool | None) -> str:
    if met is None:
        return "(reported)"
    return "yes" if met else "**NO**"


def cells(*values: str) -> str:
    return "| " + " | ".join(values) + " |"
