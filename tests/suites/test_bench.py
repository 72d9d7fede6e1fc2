"""The benchmark's smoke run: `python -m bench --quick` works end to end, so it can't rot.

No target is asserted here (a few seconds on a shared machine measure nothing); only
that every scenario ran, printed numbers, drew its plot, and left no process behind:
neither one carrying the run's marker in its environment, nor one working in the run's
temporary folder (redis-server overwrites its environment with its process title).
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import parse
from bench.config import QUICK, SCENARIOS
from bench.profile import summarize
from tests.support import unavailable, under_ci

ROOT = Path(__file__).resolve().parents[2]
MARKER = "WIDGET_PROXY_BENCH_TEST"
ROWS = (
    "1. warm path: proxy",
    "1. warm path: limit",
    "1d. as served: proxy",
    "1d. as served: limit",
    "1e. one widget",
    "1e. two widgets",
    "1b. warm path: 1 worker + Redis",
    "2. naive recipe",
    "3. cold burst: 1 user",
    f"3. cold burst: {QUICK.burst} users",
    "4. token expiry under load",
    "5. memory",
    "6. warm path: 2 workers + Redis",
    "6b. warm path: 2 workers + Redis Sentinel",
    "6c. warm path: 2 workers + Redis Cluster",
    "7. rate limit shared by 2 processes",
)
REDIS_ROWS = ("1b.", "6.", "7.")  # on the Redis at --redis-url
OWN_REDIS_ROWS = ("6b.", "6c.")  # on redis-server processes the benchmark starts
# The plot's pairs: the first three need no Redis.
PAIRS = (
    "1. warm proxy vs limit",
    "1d. as served (request lines on)",
    "2. proxy vs naive recipe",
    "1b. memory vs Redis (1 worker)",
    "6. Redis: 1 worker vs 2 workers",
    "6b. 2 workers: Redis vs Sentinel",
    "6c. 2 workers: Redis vs Cluster",
)
NUMBER = re.compile(r"\d")


def run_bench(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run the benchmark as users do; fail if anything it started outlives it."""
    tag = secrets.token_hex(8)
    out = tmp_path / "bench.md"
    scratch = tmp_path / "tmp"  # the run's temporary folder goes here: servers work in it
    scratch.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, MARKER: tag, "TMPDIR": str(scratch)},  # inherited by all it starts
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert not survivors(f"{MARKER}={tag}", scratch), "the benchmark left processes running"
    assert "bench-key-" not in done.stdout + done.stderr, "the stand-in's API key was printed"
    table = out.read_text()
    assert table.strip() in done.stdout
    return done, table


def survivors(tag: str, folder: Path) -> list[int]:
    """Processes with `tag` in their environment, or working in `folder` (even deleted)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cwd = os.readlink(entry / "cwd")
        except OSError:  # gone already, or not ours to read
            continue
        if tag.encode() in environ.split(b"\0") or cwd.startswith(str(folder)):
            found.append(int(entry.name))
    return found


def rows(table: str) -> dict[str, list[str]]:
    """The scenario table's rows by scenario name, as cells."""
    found = {}
    for line in table.splitlines():
        if re.match(r"\| \d+[a-z]?\. ", line):
            cells = [c.strip() for c in line.strip("|").split("|")]
            found[cells[0]] = cells
    return found


def row(table: dict[str, list[str]], prefix: str) -> list[str]:
    matches = [cells for name, cells in table.items() if name.startswith(prefix)]
    assert len(matches) == 1, f"no single row for {prefix!r} in {list(table)}"
    return matches[0]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_quick_run_prints_every_scenario_with_numbers(tmp_path: Path) -> None:
    plotting = importlib.util.find_spec("matplotlib") is not None  # the test extra's
    plot = tmp_path / "bench.svg"
    done, table = run_bench(tmp_path, "--quick", *(("--plot", str(plot)) if plotting else ()))

    assert "Cores: " in table
    assert "Load generator: " in table
    if under_ci():  # CI installs wrk: the fallback generator there would hide its absence
        assert "Load generator: wrk" in table
    found = rows(table)
    skipped = []
    for prefix in ROWS:
        cells = row(found, prefix)
        _, rps, p50, p99, errors, upstream, notes = cells
        if prefix.startswith(REDIS_ROWS) and notes.startswith("skipped: no Redis"):
            skipped.append(notes)
            continue
        if prefix.startswith(OWN_REDIS_ROWS) and notes.startswith("skipped: no redis-"):
            skipped.append(notes)  # no redis-server or redis-cli to start
            continue
        assert NUMBER.search(rps), cells
        assert errors.strip() == "0", cells  # a run with failed requests measured nothing
        assert NUMBER.search(upstream), cells
        if not prefix.startswith("5."):  # filling the memory has no latency to speak of
            assert p50.endswith(" ms"), cells
            assert p99.endswith(" ms"), cells
    assert "bytes per cached token" in row(found, "5.")[-1]
    single_ran = not row(found, "6.")[-1].startswith("skipped")
    for prefix in OWN_REDIS_ROWS:  # each beside the single Redis, measured in this run
        notes = row(found, prefix)[-1]
        if single_ran and not notes.startswith("skipped"):
            ratios = r"one Redis \(row 6, this run\): [\d.]+x req/s, [\d.]+x p50, [\d.]+x p99"
            assert re.search(ratios, notes), notes
    limits = row(found, "7.")[-1]
    if not limits.startswith("skipped"):
        assert re.search(r"\d[\d,]* admitted \(200; \d[\d,]* \+ \d[\d,]*\)", limits), limits
        assert re.search(r"\d[\d,]* refused \(429", limits), limits
        assert re.search(r"\| rate limit: admitted in \d+ s by 2 processes .*\| \d", table)
        assert "| Every 429 carries a Retry-After of 1 to 65 s | 0 of" in table
    assert "| Target | measured | met |" in table
    assert re.search(r"\| Warm path ≥ 0\.8 x the limit's req/s \| [\d.]+x", table)
    assert re.search(r"\| As served ≥ 0\.8 x the limit's req/s .*\| [\d.]+x", table)
    assert re.search(
        r"\| As served: a log line for every answer, on both sides \| .* \| yes", table
    )
    assert "FAILED" not in table
    assert "bench: warm" in done.stderr  # progress goes to stderr, the table to stdout
    if plotting:
        assert plot.is_file(), "--plot wrote no file"
        drawing = plot.read_text()
        assert "<svg" in drawing
        for caption in PAIRS[: 3 if skipped else len(PAIRS)]:
            assert caption in drawing, caption
    if skipped:
        unavailable(f"the Redis rows were skipped: {skipped[0]}")
    if not plotting:
        unavailable("matplotlib is not installed (the test extra's), so --plot was not run")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_built_in_load_generator_stands_in_for_wrk(tmp_path: Path) -> None:
    _, table = run_bench(tmp_path, "--quick", "--loadgen", "asyncio", "--scenarios", "warm,cold")

    assert "Load generator: built-in asyncio generator" in table
    found = rows(table)
    assert len(found) == 4, list(found)
    assert all(name.startswith(("1.", "3.")) for name in found), list(found)
    for prefix in ROWS[:2]:
        assert NUMBER.search(row(found, prefix)[1])


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_proxy_and_its_limit_run_under_granian(tmp_path: Path) -> None:
    _, table = run_bench(tmp_path, "--quick", "--server", "granian", "--scenarios", "warm")

    assert "- Server: granian" in table
    found = rows(table)
    assert list(found) == [name for name in found if name.startswith("1. ")]
    for prefix in ROWS[:2]:
        cells = row(found, prefix)
        assert NUMBER.search(cells[1]), cells
        assert cells[4] == "0", cells
    assert re.search(r"proxy / limit: [\d.]+x req/s", row(found, ROWS[1])[-1])


def test_granian_refuses_the_scenario_of_uvicorns_protocols(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(["--server", "granian", "--scenarios", "warm,http"])
    config, _ = parse(["--server", "granian"])  # every scenario: all but uvicorn's own

    assert exited.value.code == 2
    assert "scenario http compares uvicorn's HTTP protocols: run it with --server uvicorn" in (
        capsys.readouterr().err
    )
    assert config.server == "granian"
    assert config.scenarios == tuple(s for s in SCENARIOS if s not in ("http", "served", "mounted"))


def test_profile_summary_ranks_frames_by_own_and_inclusive_time(tmp_path: Path) -> None:
    raw = tmp_path / "proxy.raw"
    raw.write_text(
        "Runner.run (runners.py:1);visitor (/x/site-packages/app/admission.py:40) 3\n"
        "Runner.run (runners.py:1);visitor (/x/site-packages/app/admission.py:41);un (s.py:9) 1\n"
        "Thread.run (threading.py:1);Connection._recv (connection.py:9) 100\n"
    )

    summary = summarize(raw, rps=1000.0)

    own, inclusive = summary.split("inclusive time")
    assert "75.0%    750.0 µs  visitor (site-packages/app/admission.py)" in own
    assert "100.0%" not in inclusive  # the frame in every sample says nothing
    assert "_recv" not in summary  # only the event loop's thread serves requests
