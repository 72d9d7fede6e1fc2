"""`--plot FILE`: the compared load runs as grouped bars, req/s above, p50 and p99 below.

Each pair is one comparison the table makes: the warm proxy against the limit (quiet,
and as served: each logging a line per request) and against the naive recipe, the
memory store against Redis (one worker), one worker against several (both on Redis),
and several workers on one Redis against the same on a Sentinel and on a Cluster. A
pair is drawn when both of its runs took place. matplotlib is imported here only, so a
run without `--plot` does not need it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.loadgen import LoadResult
from bench.report import (
    CLUSTER,
    LIMIT,
    NAIVE,
    PROXY,
    REDIS,
    REDIS_MEMORY,
    SENTINEL,
    SERVED,
    SERVED_LIMIT,
    WORKERS,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

FIRST, SECOND = "tab:blue", "tab:orange"  # each pair's two runs, as its caption names them


@dataclass(frozen=True, slots=True)
class Pair:
    caption: str
    left: tuple[str, LoadResult]  # label, run
    right: tuple[str, LoadResult]


def pairs(loads: Mapping[str, LoadResult], workers: int = 2) -> list[Pair]:
    """The comparisons whose two runs are both in `loads`, in the table's order."""
    wanted = [
        ("1. warm proxy vs limit", (PROXY, "proxy"), (LIMIT, "limit")),
        ("1d. as served (request lines on)", (SERVED, "proxy"), (SERVED_LIMIT, "limit")),
        ("2. proxy vs naive recipe", (PROXY, "proxy"), (NAIVE, "naive")),
        ("1b. memory vs Redis (1 worker)", (REDIS_MEMORY, "memory"), (REDIS, "Redis")),
        (
            f"6. Redis: 1 worker vs {workers} workers",
            (REDIS, "1 worker"),
            (WORKERS, f"{workers} workers"),
        ),
        (f"6b. {workers} workers: Redis vs Sentinel", (WORKERS, "Redis"), (SENTINEL, "Sentinel")),
        (f"6c. {workers} workers: Redis vs Cluster", (WORKERS, "Redis"), (CLUSTER, "Cluster")),
    ]
    return [
        Pair(caption, (a_label, loads[a]), (b_label, loads[b]))
        for caption, (a, a_label), (b, b_label) in wanted
        if a in loads and b in loads
    ]


def draw(path: Path, loads: Mapping[str, LoadResult], title: str = "", workers: int = 2) -> None:
    """Write the figure to `path`; its suffix picks the format (.svg, .png, .pdf)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    found = pairs(loads, workers)
    figure = Figure(figsize=(max(12, 2.3 * len(found)), 9), layout="constrained")
    speed, latency = figure.subplots(2, 1)
    figure.suptitle("widget-proxy benchmark" + (f"\n{title}" if title else ""), fontsize=11)
    if not found:
        for axes in (speed, latency):
            axes.set_axis_off()
        speed.text(0.5, 0.5, "no compared pair ran (warm, served, naive, redis, workers)",
                   ha="center", va="center")  # fmt: skip
    else:
        throughput(speed, found)
        latencies(latency, found)
        handles = [
            Patch(color=FIRST, label="first of the pair"),
            Patch(color=SECOND, label="second of the pair"),
            Patch(facecolor="white", edgecolor="black", hatch="//", label="p99 (plain: p50)"),
        ]
        figure.legend(handles=handles, loc="outside lower center", ncols=3)
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "widget-proxy"}):
        # Text stays text in an SVG (searchable), and the file carries no date.
        metadata = {"Date": None} if path.suffix.lower() == ".svg" else None
        figure.savefig(path, metadata=metadata)


def throughput(axes: Axes, found: list[Pair]) -> None:
    width = 0.35
    for i, pair in enumerate(found):
        for offset, (label, load), color in (
            (-width / 2, pair.left, FIRST),
            (width / 2, pair.right, SECOND),
        ):
            bars = axes.bar(i + offset, load.rps, width, color=color)
            axes.bar_label(bars, labels=[f"{label}\n{load.rps:,.0f}"], fontsize=8, padding=2)
    axes.set_xticks(range(len(found)), [p.caption for p in found])
    axes.set_ylabel("requests per second")
    axes.set_title("Throughput (higher is better)", fontsize=10)
    axes.margins(y=0.2)


def latencies(axes: Axes, found: list[Pair]) -> None:
    width = 0.2
    for i, pair in enumerate(found):
        bars = [
            (-1.5, pair.left, "p50", FIRST),
            (-0.5, pair.right, "p50", SECOND),
            (0.5, pair.left, "p99", FIRST),
            (1.5, pair.right, "p99", SECOND),
        ]
        for slot, (_, load), which, color in bars:
            value = (load.p50 if which == "p50" else load.p99) * 1000
            hatch = "//" if which == "p99" else None
            drawn = axes.bar(i + slot * width, value, width, color=color, hatch=hatch,
                             edgecolor="black", linewidth=0.5)  # fmt: skip
            axes.bar_label(drawn, labels=[f"{value:.1f}"], fontsize=7, padding=2)
    axes.set_xticks(range(len(found)), [p.caption for p in found])
    axes.set_yscale("log")  # the naive recipe's hundreds of ms beside the warm path's few
    axes.set_ylabel("latency, ms (log scale)")
    axes.set_title(
        "Latency, per pair: p50 of each, then p99 of each (lower is better)", fontsize=10
    )
    axes.margins(y=0.3)
