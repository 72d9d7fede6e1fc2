"""What a scenario hands back to the run: its table rows, the targets it can judge, and
its load runs by the part they play in a comparison (for `--plot`). A module of its own
because every scenario module returns one and the runner gathers them, so neither side
has to import the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.loadgen import LoadResult
from bench.report import Check, Row


@dataclass
class Outcome:
    rows: list[Row] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    loads: dict[str, LoadResult] = field(default_factory=dict)  # by part (bench.report)
    failed: bool = False  # a part broke (its row says FAILED) though the others ran
