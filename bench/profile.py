"""`--profile DIR`: where a server's time goes under the warm load, with py-spy.

The profile is taken in an extra load run after the measured one, because py-spy
pauses the process for each sample and would slow the run it samples. The raw
stacks (for flamegraph.pl or speedscope) and a summary of the top frames, by own
time and by inclusive time, are written to DIR.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Final

RATE: Final = 100  # samples per second
_LINE: Final = re.compile(r":\d+\)$")


def py_spy() -> str | None:
    """py-spy on PATH, or next to this interpreter (the virtualenv's)."""
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


async def record(binary: str, pids: list[int], seconds: int, raw: Path) -> None:
    """Sample every process in `pids` for `seconds`, side by side, into one raw file."""
    parts = [raw.with_suffix(f".{pid}.raw") for pid in pids]
    await asyncio.gather(
        *(_record(binary, pid, seconds, part) for pid, part in zip(pids, parts, strict=True))
    )
    _merge(parts, raw)


def _merge(parts: list[Path], raw: Path) -> None:
    raw.write_text("".join(part.read_text() for part in parts))
    for part in parts:
        part.unlink()


async def _record(binary: str, pid: int, seconds: int, raw: Path) -> None:
    command = [
        binary, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", str(RATE),
        "--format", "raw", "--output", str(raw), "--idle",
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        _, err = await asyncio.wait_for(process.communicate(), seconds + 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")


def frame(name: str) -> str:
    """`func (path:line)` → `func (short path)`: lines apart, one function is one row."""
    name = _LINE.sub(")", name)
    return re.sub(r"\(/\S*?/(site-packages|lib/python3\.\d+|bench|app)/", r"(\1/", name)


def summarize(raw: Path, rps: float, processes: int = 1, top: int = 30) -> str:
    """Own and inclusive time of the busiest functions: share of all samples, and µs per
    request at the `rps` the `processes` sampled served together.

    `--idle` keeps the samples in which the event loop waits for the network, so the
    shares are of wall time and the loop's wait shows as its own row. Frames present
    in every sample (the interpreter and uvicorn's start-up stack) are left out.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [frame(f) for f in stack.split(";")]
        if not any(f.startswith("Runner.run (") for f in frames):
            continue  # another thread (uvicorn's worker keeps one for its supervisor)
        total += int(count)
        own[frames[-1]] += int(count)
        for name in set(frames):
            inclusive[name] += int(count)
    if total == 0:
        return "no samples\n"

    def table(title: str, counts: Counter[str]) -> list[str]:
        rows = [
            f"{100 * n / total:5.1f}%  {processes * n / total * 1e6 / rps:7.1f} µs  {name}"
            for name, n in counts.most_common()
            if n < total
        ][:top]
        return [f"{title} ({total:,} samples at {RATE}/s; share, µs per request, function)",
                *rows, ""]  # fmt: skip

    return "\n".join([*table("own time", own), *table("inclusive time", inclusive)])


def write_summary(raw: Path, heading: str, rps: float, processes: int) -> Path:
    """The summary beside the raw stacks: `label.txt` next to `label.raw`."""
    text = raw.with_suffix(".txt")
    text.write_text(heading + "\n\n" + summarize(raw, rps, processes))
    return text
