"""What one benchmark run does: the full run's defaults, and `--quick`'s smaller ones."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

SCENARIOS: Final = (
    "warm", "served", "mounted", "http", "redis", "naive", "cold", "expiry", "memory",
    "workers", "limits",
)  # fmt: skip
# The HTTP servers the proxy, its limit and the naive recipe can run on (`--server`); the
# stand-in vendor runs on uvicorn whichever is measured.
SERVERS: Final = ("uvicorn", "granian")
# What only uvicorn can run, and why.
UVICORN_ONLY: Final = {
    "http": "compares uvicorn's HTTP protocols",  # 1c
    "served": "compares serve's defaults with the limit at uvicorn's",  # 1d
    "mounted": "serve --config runs under uvicorn only",  # 1e
}


@dataclass(frozen=True, slots=True)
class Config:
    scenarios: tuple[str, ...] = SCENARIOS
    duration: float = 30.0  # seconds of each warm load run
    connections: int = 64
    users: int = 1000
    threads: int = 1  # wrk's; it shares the cores with the server under test
    loadgen: str = "auto"
    signin_delay: float = 0.050  # the stand-in vendor's latency, seconds
    page_delay: float = 0.030
    burst: int = 500  # concurrent first requests in the cold burst
    expiry_users: int = 50
    expiry_duration: float = 60.0
    token_ttl: int = 10  # the stand-in's token lifetime in the expiry scenario
    refresh_margin: float = 2.0  # TOKEN_REFRESH_MARGIN there
    memory_counts: tuple[int, ...] = (10_000, 100_000)
    workers: int = 2
    server: str = "uvicorn"  # what serves the proxy, its limit and the naive recipe
    redis_url: str = "redis://127.0.0.1:6379/15"
    limits_duration: float = 60.0  # one user driving two processes against a shared limit
    quick: bool = False
    profile: Path | None = None  # py-spy the proxy in an extra warm run, into this folder
    plot: Path | None = None  # an SVG (or PNG, …) of the comparisons, drawn after the run


FULL: Final = Config()

# A smoke run: every scenario at its smallest, about a second each, so the suite can run it. Its
# numbers show that the benchmark works, not how fast the proxy is.
QUICK: Final = replace(
    FULL,
    duration=0.5,
    connections=8,
    users=20,
    burst=20,
    expiry_users=5,
    expiry_duration=2.0,
    token_ttl=2,
    refresh_margin=1.0,
    memory_counts=(100, 400),
    limits_duration=2.0,
    quick=True,
)
