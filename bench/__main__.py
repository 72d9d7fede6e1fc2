"""`python -m bench [--quick] [--out FILE] [options]`: run the benchmark, print the table."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
from collections.abc import Coroutine, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from bench.config import FULL, QUICK, SCENARIOS, SERVERS, UVICORN_ONLY, Config
from bench.runner import run

T = TypeVar("T")


def parse(argv: Sequence[str] | None = None) -> tuple[Config, Path | None]:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark widget-proxy on loopback against its limit and the naive recipe.",
    )
    parser.add_argument("--quick", action="store_true", help="a half-minute smoke run")
    parser.add_argument("--out", type=Path, help="also write the Markdown table to this file")
    parser.add_argument(
        "--scenarios",
        help=f"comma-separated subset of {','.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--server",
        choices=SERVERS,
        help="the HTTP server of the proxy, its limit and the naive recipe (uvicorn)",
    )
    parser.add_argument("--duration", type=float, help="seconds per warm load run (30)")
    parser.add_argument("--connections", type=int, help="concurrent connections (64)")
    parser.add_argument("--users", type=int, help="distinct signed-in users (1000)")
    parser.add_argument("--threads", type=int, help="wrk threads (1)")
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "asyncio"),
        help="load generator: wrk if installed (auto), or force one",
    )
    parser.add_argument("--signin-delay", type=float, help="stand-in signin latency, s (0.05)")
    parser.add_argument("--page-delay", type=float, help="stand-in page latency, s (0.03)")
    parser.add_argument("--burst", type=int, help="concurrent first requests, cold burst (500)")
    parser.add_argument("--expiry-duration", type=float, help="token-expiry run, s (60)")
    parser.add_argument(
        "--redis-url", help="Redis for scenarios 1b, 6, 7 (redis://127.0.0.1:6379/15)"
    )
    parser.add_argument(
        "--plot",
        type=Path,
        help="after the run, draw the compared req/s and latencies into this file (.svg, .png)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="also profile the proxy and the limit under load with py-spy, into this folder",
    )
    args = parser.parse_args(argv)

    config = QUICK if args.quick else FULL
    overrides = {
        name: value
        for name in (
            "duration", "connections", "users", "threads", "loadgen", "signin_delay",
            "page_delay", "burst", "expiry_duration", "redis_url", "profile", "plot", "server",
        )
        if (value := getattr(args, name)) is not None
    }  # fmt: skip
    if args.scenarios:
        chosen = tuple(s.strip() for s in args.scenarios.split(",") if s.strip())
        if not chosen:
            parser.error("--scenarios names none")
        unknown = [s for s in chosen if s not in SCENARIOS]
        if unknown:
            parser.error(
                f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"
            )
        overrides["scenarios"] = chosen
    if args.server == "granian":
        chosen = overrides.get("scenarios", config.scenarios)
        if args.scenarios and (only := [s for s in chosen if s in UVICORN_ONLY]):
            parser.error(
                "; ".join(f"scenario {s} {UVICORN_ONLY[s]}" for s in only)
                + ": run it with --server uvicorn"
            )
        overrides["scenarios"] = tuple(s for s in chosen if s not in UVICORN_ONLY)
    for name in ("duration", "connections", "users", "burst", "expiry_duration", "threads"):
        if name in overrides and overrides[name] <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    return replace(config, **overrides), args.out


async def until_signalled(work: Coroutine[Any, Any, T]) -> T:
    """`work`, cancelled by SIGTERM or SIGHUP as by Ctrl+C, so that its servers are stopped."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, task.cancel)
    try:
        return await work
    finally:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(signum)


def main(argv: Sequence[str] | None = None) -> int:
    config, out = parse(argv)
    with tempfile.TemporaryDirectory(prefix="widget-proxy-bench-") as workdir:
        try:
            finished = asyncio.run(until_signalled(run(config, Path(workdir))))
        except (KeyboardInterrupt, asyncio.CancelledError):
            print("bench: interrupted; every server it started has been stopped", file=sys.stderr)
            return 130
    print(finished.report)
    if out is not None:
        out.write_text(finished.report)
    if config.plot is not None:
        from bench.plot import draw  # matplotlib only when a plot is asked for

        draw(config.plot, finished.loads, finished.title, config.workers)
    return 0 if finished.complete else 1


if __name__ == "__main__":
    sys.exit(main())
