"""How much CPU other programs took while we measured, so a shared machine shows; and
how much the server under load took, for its req/s per core.

The machine's busy time comes from /proc/stat; ours is the benchmark's process tree
(itself, its servers and their workers, wrk), live processes' own time plus what
they reaped from their children, so that a wrk that has just exited still counts
as ours. The difference is everyone else's. A server's is its own process tree (its
workers, and every thread of each: granian's Rust threads too).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

_PROC: Final = Path("/proc")


@dataclass(frozen=True, slots=True)
class CpuSample:
    busy: int  # clock ticks, all cores, outside idle and iowait
    ours: int  # clock ticks of our process tree
    at: float  # time.monotonic()


def _busy() -> int:
    fields = (_PROC / "stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
    return user + nice + system + irq + softirq


def _tree_ticks(root: int) -> int:
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # The command name may hold spaces and parentheses: split after the last ')'.
        rest = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(rest[1])
        utime, stime, cutime, cstime = (int(v) for v in rest[11:15])
        ticks[pid] = utime + stime + cutime + cstime
    total = 0
    for pid, tick in ticks.items():
        walk = pid
        while walk not in (0, 1, root) and walk in parents:
            walk = parents[walk]
        if walk == root:
            total += tick
    return total


def sample() -> CpuSample | None:
    """None where there is no /proc to read."""
    try:
        return CpuSample(_busy(), _tree_ticks(os.getpid()), time.monotonic())
    except (OSError, ValueError, IndexError):
        return None


def others(before: CpuSample | None, after: CpuSample | None) -> float | None:
    """Cores that other programs kept busy on average between the two samples."""
    if before is None or after is None or after.at <= before.at:
        return None
    hertz = os.sysconf("SC_CLK_TCK")
    foreign = (after.busy - before.busy) - (after.ours - before.ours)
    return max(0.0, foreign / hertz / (after.at - before.at))


def server_sample(pid: int) -> CpuSample | None:
    """The CPU time of the server `pid` and its workers so far (`busy` unused)."""
    try:
        return CpuSample(0, _tree_ticks(pid), time.monotonic())
    except (OSError, ValueError, IndexError):
        return None


def used(before: CpuSample | None, after: CpuSample | None) -> float | None:
    """Cores the sampled server kept busy on average between the two samples."""
    if before is None or after is None or after.at <= before.at:
        return None
    hertz = os.sysconf("SC_CLK_TCK")
    return (after.ours - before.ours) / hertz / (after.at - before.at)
