"""One benchmark run: the stand-in up, the chosen scenarios in order, everything down."""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import Config
from bench.loadgen import LoadResult, pick_generator
from bench.outcome import Outcome
from bench.report import Row, cpu_model, render, revision
from bench.scenarios import Scenarios
from bench.stack import Secrets, running_stack


@dataclass(frozen=True, slots=True)
class Finished:
    report: str  # the Markdown table
    complete: bool  # every scenario ran to the end
    loads: dict[str, LoadResult] = field(default_factory=dict)  # by part (bench.report)
    title: str = ""  # the machine and the code, for the plot


async def run(config: Config, workdir: Path) -> Finished:
    """The Markdown report, whether every scenario ran to the end, and the load runs."""
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    generator = pick_generator(config.loadgen, config.threads, workdir)
    outcome = Outcome()
    complete = True
    async with running_stack(workdir, Secrets.fresh(), config.server) as stack:
        scenarios = Scenarios(config, stack, generator)
        for name in config.scenarios:
            progress(f"{name} …")
            began = time.monotonic()
            try:
                result = await scenarios.by_name(name)()
            except Exception as exc:
                # One broken scenario must not hide the others' numbers; the exit
                # status still says the run is incomplete.
                complete = False
                traceback.print_exc(file=sys.stderr)
                result = Outcome(rows=[Row(name, notes=f"FAILED: {type(exc).__name__}: {exc}")])
            complete = complete and not result.failed
            outcome.rows += result.rows
            outcome.checks += result.checks
            outcome.loads.update(result.loads)
            progress(f"{name} done in {time.monotonic() - began:.0f} s")
    report = render(config, generator.name, outcome.rows, outcome.checks,
                    time.monotonic() - started, load_before)  # fmt: skip
    title = f"{os.cpu_count()} cores, {cpu_model()}; code {revision()}; {generator.name}"
    return Finished(report, complete, outcome.loads, title)


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)
