"""The scenarios of issue 7 (and 1b, 7 of the warm-path issue) by the names `--scenarios`
takes. Each starts the servers it needs, measures, stops them, and returns an Outcome;
they live in one module per concern (warm_path, token_cache, workers, rate_limit) and
share one Harness per run, which carries the warm runs later scenarios compare with.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from bench import mounted, rate_limit, served, token_cache, warm_path, workers
from bench.config import Config
from bench.harness import Harness
from bench.loadgen import LoadGenerator
from bench.outcome import Outcome
from bench.stack import Stack

Scenario = Callable[[Harness], Awaitable[Outcome]]

BY_NAME: Final[Mapping[str, Scenario]] = {
    "warm": warm_path.warm,
    "served": served.served,
    "mounted": mounted.mounted,
    "http": warm_path.protocols,
    "redis": warm_path.warm_redis,
    "naive": warm_path.naive,
    "cold": token_cache.cold,
    "expiry": token_cache.expiry,
    "memory": token_cache.memory,
    "workers": workers.workers,
    "limits": rate_limit.limits,
}


class Scenarios:
    def __init__(self, config: Config, stack: Stack, loadgen: LoadGenerator) -> None:
        self.harness = Harness(config, stack, loadgen)

    def by_name(self, name: str) -> Callable[[], Awaitable[Outcome]]:
        scenario = BY_NAME[name]
        return lambda: scenario(self.harness)
