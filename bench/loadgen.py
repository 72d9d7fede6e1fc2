"""Load generators: `wrk` with a Lua script when it is installed, else a built-in one.

Both send each request with one of U session cookies, round-robin, on keep-alive
connections, for a fixed time, and report the same numbers: requests, requests/s,
latency percentiles and errors (socket errors and answers outside 2xx).
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from bench.http import Connection, encode_request

MARK: Final = "BENCH_JSON "

# Each wrk thread has its own Lua state; `setup` numbers them so that they start at
# different users, and `done` prints the summary as one JSON line after its report.
# `errors.status` counts answers of 400 and above; 3xx would pass unnoticed, but
# nothing here redirects.
_WRK_SCRIPT: Final = """
local counter = 1
local threads = 0
local requests = {}

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  for line in io.lines(args[1]) do
    requests[#requests + 1] = wrk.format("GET", args[2], {["Cookie"] = line})
  end
  counter = (id * 7919) % #requests
end

function request()
  counter = counter % #requests + 1
  return requests[counter]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,'
    .. '"timeout":%d,"p50_us":%d,"p99_us":%d}\\n',
    "MARK", summary.requests, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99)))
end
""".replace('"MARK"', json.dumps(MARK))


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests: int
    seconds: float
    p50: float  # seconds
    p99: float
    socket_errors: int
    bad_status: int  # answers outside 2xx (wrk: 4xx and 5xx)
    others: float | None = None  # cores other programs kept busy meanwhile (bench.cpu)
    server_cores: float | None = None  # cores the server under load kept busy (bench.cpu)

    @property
    def per_core(self) -> float | None:
        """Requests a second per core the server kept busy."""
        return self.rps / self.server_cores if self.server_cores else None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.socket_errors + self.bad_status


@dataclass(frozen=True, slots=True)
class Target:
    port: int
    path: str = "/widget"


class LoadGenerator(Protocol):
    @property
    def name(self) -> str: ...

    async def run(
        self, target: Target, cookies: Sequence[str], seconds: float, connections: int
    ) -> LoadResult:
        """`connections` keep-alive clients for `seconds`, cookies round-robin."""


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending sequence; 0 when it is empty."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


class Wrk:
    def __init__(self, binary: str, threads: int, workdir: Path) -> None:
        self._binary = binary
        self._threads = threads
        self._workdir = workdir
        self._script = workdir / "bench.lua"
        self._script.write_text(_WRK_SCRIPT)

    @property
    def name(self) -> str:
        return f"wrk ({self._binary}, {self._threads} thread{'s' * (self._threads > 1)})"

    async def run(
        self, target: Target, cookies: Sequence[str], seconds: float, connections: int
    ) -> LoadResult:
        whole = max(1, round(seconds))  # wrk takes whole seconds
        listing = self._workdir / f"cookies-{len(cookies)}.txt"
        listing.write_text("".join(f"{c}\n" for c in cookies))
        process = await asyncio.create_subprocess_exec(
            self._binary,
            "--threads", str(min(self._threads, connections)),
            "--connections", str(connections),
            "--duration", f"{whole}s",
            "--timeout", "10s",
            "--script", str(self._script),
            f"http://127.0.0.1:{target.port}{target.path}",
            "--", str(listing), target.path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(process.communicate(), whole + 30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        for line in out.decode(errors="replace").splitlines():
            if line.startswith(MARK):
                data = json.loads(line.removeprefix(MARK))
                return LoadResult(
                    requests=int(data["requests"]),
                    seconds=int(data["duration_us"]) / 1e6,
                    p50=int(data["p50_us"]) / 1e6,
                    p99=int(data["p99_us"]) / 1e6,
                    socket_errors=sum(
                        int(data[k]) for k in ("connect", "read", "write", "timeout")
                    ),
                    bad_status=int(data["status"]),
                )
        raise RuntimeError(f"wrk printed no summary: {err.decode(errors='replace')[-500:]}")


class AsyncioLoad:
    """The fallback: keep-alive raw-socket clients on this process's event loop."""

    @property
    def name(self) -> str:
        return "built-in asyncio generator (wrk not found)"

    async def run(
        self, target: Target, cookies: Sequence[str], seconds: float, connections: int
    ) -> LoadResult:
        return await drive(target, cookies, connections, seconds=seconds)


async def drive(
    target: Target, cookies: Sequence[str], connections: int, *, seconds: float | None = None
) -> LoadResult:
    """For `seconds`, round-robin; or, with no time given, every cookie exactly once."""
    requests = [encode_request(target.port, target.path, {"Cookie": c}) for c in cookies]
    latencies: list[float] = []
    counts = {"socket": 0, "status": 0}
    started = time.perf_counter()
    deadline = None if seconds is None else started + seconds
    next_index = iter(range(len(requests))) if seconds is None else None

    def pick(state: list[int]) -> bytes | None:
        if next_index is not None:
            index = next(next_index, None)
            return None if index is None else requests[index]
        assert deadline is not None
        if time.perf_counter() >= deadline:
            return None
        state[0] = (state[0] + connections) % len(requests)
        return requests[state[0]]

    async def client(offset: int) -> None:
        state = [offset - connections]
        connection: Connection | None = None
        try:
            while (raw := pick(state)) is not None:
                try:
                    if connection is None:
                        connection = await Connection.open(target.port)
                    reply = await connection.send(raw)
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    counts["socket"] += 1
                    if connection is not None:
                        await connection.close()
                    connection = None
                    continue
                latencies.append(reply.elapsed)
                if not 200 <= reply.status < 300:
                    counts["status"] += 1
        finally:
            if connection is not None:
                await connection.close()

    budget = None if seconds is None else seconds + 30
    await asyncio.wait_for(asyncio.gather(*(client(i) for i in range(connections))), budget)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return LoadResult(
        requests=len(latencies),
        seconds=elapsed,
        p50=percentile(latencies, 50),
        p99=percentile(latencies, 99),
        socket_errors=counts["socket"],
        bad_status=counts["status"],
    )


def pick_generator(choice: str, threads: int, workdir: Path) -> LoadGenerator:
    """`auto`: wrk when it is on PATH; `wrk` insists on it; `asyncio` never uses it."""
    binary = shutil.which("wrk")
    if choice == "wrk" and binary is None:
        raise SystemExit("bench: --loadgen wrk, but wrk is not installed (apt-get install wrk)")
    if choice != "asyncio" and binary is not None:
        return Wrk(binary, threads, workdir)
    return AsyncioLoad()
