"""The measuring kit every scenario shares: the run's configuration, its services and
load generator, and the few ways a scenario measures with them (cookies for numbered
users, a timed load run with the upstream calls it caused, a priming pass, an optional
py-spy profile, the stand-in's latency). It also keeps the warm runs that later
scenarios compare themselves with, and the user numbers each scenario draws from, side
by side so that no two scenarios share a user.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Final

from bench import cpu, users
from bench.config import Config
from bench.loadgen import LoadGenerator, LoadResult, Target, drive
from bench.processes import Server
from bench.profile import py_spy, record, write_summary
from bench.stack import Stack

# Warm runs measure the warm path, so nothing may go stale during them: the stand-in
# issues hour-long tokens and the page stays fresh as long (at the defaults a page
# is revalidated once a minute, in the background, with one conditional GET).
LONG_TTL: Final = 3600
DEFAULT_TTL: Final = 300  # the stand-in's own default
PROFILE_SECONDS: Final = 10

# Users of their own for the scenarios that count first-time signins.
COLD_USERS: Final = 1_000_000
EXPIRY_USERS: Final = 2_000_000
MEMORY_USERS: Final = 3_000_000
LIMITS_USER: Final = 4_000_000


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("inf")


class Harness:
    def __init__(self, config: Config, stack: Stack, loadgen: LoadGenerator) -> None:
        self.config = config
        self.stack = stack
        self.loadgen = loadgen
        self.proxy_warm: LoadResult | None = None  # scenario 1's, for the other ratios
        self.redis_warm: LoadResult | None = None  # scenario 1b's, for scenario 6
        self.workers_warm: LoadResult | None = None  # scenario 6's, for 6b and 6c

    def cookies(self, count: int, first: int = 0) -> list[str]:
        return users.cookies(self.stack.keys.session_secret, count, first)

    async def measure(
        self, server: Server, cookies: Sequence[str], seconds: float, path: str = "/widget"
    ) -> tuple[LoadResult, Counter[str]]:
        """One load run (of GETs of `path`), and the upstream calls counted while it ran."""
        before = await self.stack.calls()
        busy, serving = cpu.sample(), cpu.server_sample(server.pid)
        load = await self.loadgen.run(
            Target(server.port, path), cookies, seconds, self.config.connections
        )
        others, used = (
            cpu.others(busy, cpu.sample()),
            cpu.used(serving, cpu.server_sample(server.pid)),
        )
        load = replace(load, others=others, server_cores=used)
        return load, await self.stack.calls() - before

    async def prime(
        self, server: Server, cookies: Sequence[str], path: str = "/widget"
    ) -> tuple[LoadResult, Counter[str]]:
        """One request per cookie, so that every token (and the page) is cached."""
        before = await self.stack.calls()
        target = Target(server.port, path)
        load = await drive(target, cookies, min(self.config.connections, len(cookies)))
        return load, await self.stack.calls() - before

    async def profiled(self, server: Server, cookies: Sequence[str], label: str) -> None:
        """With `--profile`: one more load run, sampled by py-spy (see bench.profile)."""
        folder = self.config.profile
        if folder is None:
            return
        binary = py_spy()
        if binary is None:
            raise RuntimeError("--profile needs py-spy (pip install py-spy)")
        raw = folder / f"{label}.raw"
        target = Target(server.port)
        load = asyncio.create_task(
            self.loadgen.run(target, cookies, PROFILE_SECONDS + 2, self.config.connections)
        )
        try:
            await asyncio.sleep(1.0)  # sample the server under load only
            pids = server.workers()
            await record(binary, pids, PROFILE_SECONDS, raw)
        finally:
            result = await load  # bounded: it ends by itself, a few seconds on
        heading = f"{label}: {result.rps:,.0f} req/s while profiled (py-spy slows it)"
        write_summary(raw, heading, result.rps, len(pids))

    async def latency(self, token_ttl: int) -> None:
        c = self.config
        await self.stack.configure(c.signin_delay, c.page_delay, token_ttl)
