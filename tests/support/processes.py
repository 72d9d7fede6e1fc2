"""The proxy as a real process: `python -m widget_proxy …`, stopped with SIGTERM; and
one user's paced page views at processes that share a rate limit."""

from __future__ import annotations

import io
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
from dotenv import dotenv_values

from tests.support import EMAIL, LeakScanner, free_port, fresh_secret, session_cookie, wait_until
from widget_proxy.cache.counts import admitted_at_most
from widget_proxy.providers.returningai import ReturningAIStandIn
from widget_proxy.settings import Settings, all_options

SERVED_SECRET = fresh_secret("served-")


def answers(url: str) -> bool:
    try:
        httpx2.get(url, timeout=1)
    except httpx2.TransportError:
        return False
    return True


@contextmanager
def running(
    args: list[str], cwd: Path, url: str, scanner: LeakScanner
) -> Iterator[subprocess.Popen[bytes]]:
    """Run the command until the block ends; its log is scanned for secrets."""
    log = cwd / "stderr.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "widget_proxy", *args],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            wait_until(lambda: answers(url) or process.poll() is not None, timeout=30)
            assert process.poll() is None, log.read_text()
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            # uvicorn shuts down gracefully, then re-raises the signal it caught.
            assert process.wait(timeout=30) in (0, -signal.SIGTERM)
            scanner.check("the process's log", log.read_text())


@dataclass(frozen=True)
class Served:
    url: str
    secret: str
    log: Path
    process: subprocess.Popen[bytes]

    def cookie(self, email: str) -> dict[str, str]:
        return {"cookie": f"session={session_cookie(self.secret, {'email': email})}"}


@contextmanager
def serve(
    tmp_path: Path,
    vendor: ReturningAIStandIn,
    upstream: str,
    scanner: LeakScanner,
    *args: str,
    **env: str,
) -> Iterator[Served]:
    """`widget-proxy serve` configured by a `.env` file in its working directory."""
    port = free_port()
    secret = SERVED_SECRET  # the same for every process of a run: they share a cache
    scanner.add(secret)
    settings = {
        "WIDGET_BASE_URL": upstream,
        "WIDGET_API_KEY": vendor.api_key,
        "WIDGET_COMMUNITY_ID": vendor.community_id,
        "WIDGET_ID": "shop-store",
        "SESSION_SECRET": secret,
        "RATE_LIMIT_PER_MINUTE": "1000000",
        "RATE_LIMIT_IP_PER_MINUTE": "1000000",
        **env,
    }
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    base = f"http://127.0.0.1:{port}"
    with running(["serve", "--port", str(port), *args], tmp_path, base, scanner) as process:
        yield Served(base, secret, tmp_path / "stderr.log", process)


def clean_environ(**env: str) -> dict[str, str]:
    """The runner's environment without any setting of the proxy, and `env`."""
    names = {o.name for o in all_options()}
    return {**{k: v for k, v in os.environ.items() if k not in names}, **env}


@contextmanager
def printing(
    args: list[str], cwd: Path, scanner: LeakScanner, env: dict[str, str] | None = None
) -> Iterator[dict[str, str]]:
    """`widget-proxy *args` (`standin`, `demo`) until the block ends, then SIGTERM, which
    must end it with status 0; the settings it printed on stdout, up to the empty line
    that ends them. Its log (stderr) is scanned for every secret it printed."""
    log = cwd / "stderr.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "widget_proxy", *args],
            cwd=cwd,
            env=clean_environ(**(env or {})),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(process, lines), daemon=True)
    reader.start()
    printed: list[str] = []
    try:
        while (line := lines.get(timeout=30)) != "\n":
            assert line, f"it stopped before printing its settings: {log.read_text()}"
            printed.append(line)
        read = dotenv_values(stream=io.StringIO("".join(printed)))
        settings = {k: v for k, v in read.items() if v is not None}
        scanner.add(*Settings.from_env(settings).secrets)
        yield settings
    finally:
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=30)
        reader.join(timeout=5)  # it reads to the end of the output, then stops
        if process.stdout is not None:
            process.stdout.close()
        scanner.check("the process's log", log.read_text())
        assert status == 0, log.read_text()  # a clean stop, not a death by signal


def _read_lines(process: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line)
    lines.put("")  # the end of its output


def run_forget(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`widget-proxy forget *args` in `cwd`, configured by its `.env` only."""
    return subprocess.run(
        [sys.executable, "-m", "widget_proxy", "forget", *args],
        cwd=cwd, env=clean_environ(), capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def serve_refused(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`widget-proxy serve` configured by `env` only, for settings it must refuse: it
    exits at once (a start, or a hang, fails the caller by the timeout)."""
    return subprocess.run(
        [sys.executable, "-m", "widget_proxy", "serve", "--port", "0", *args],
        cwd=cwd,
        env={"PATH": "", **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def refused_by(
    command: str, cwd: Path, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], str]:
    """`serve` or `check` (with a test user's email) given settings they must refuse
    before anything starts: the process, and all it said (stdout and stderr)."""
    refused = serve_refused(cwd, env) if command == "serve" else run_check(cwd, env, "t@x.org")
    return refused, refused.stdout + refused.stderr


def run_check(
    cwd: Path,
    settings: dict[str, str],
    email: str | None,
    *args: str,
    dotenv: bool = True,
) -> subprocess.CompletedProcess[str]:
    """`widget-proxy check` in `cwd`, configured by `settings` only: a `.env` of them, or
    (`dotenv=False`) the environment, with no `.env` in `cwd`."""
    env = clean_environ()  # only `settings` configure it, not the runner's environment
    if dotenv:
        (cwd / ".env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    else:
        (cwd / ".env").unlink(missing_ok=True)
        env.update(settings)
    env["PYTHONIOENCODING"] = "utf-8"  # the check marks, whatever the runner's locale
    command = [sys.executable, "-m", "widget_proxy", "check"]
    command += [*(["--email", email] if email else []), *args]
    return subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )


# --- one user's limit, shared by processes ----------------------------------------

LIMIT = 20  # RATE_LIMIT_PER_MINUTE
INTERVAL = 0.5  # RATE_LIMIT_SYNC_INTERVAL
PACE = 0.05  # seconds between one user's requests to each process: 20 a second each
LOOPBACK = 0.01  # seconds a sync's round trip to a Redis on loopback takes, at most
SHARED_LIMIT = {"RATE_LIMIT_PER_MINUTE": str(LIMIT), "RATE_LIMIT_SYNC_INTERVAL": str(INTERVAL)}


def bound(processes: int, round_trip: float = LOOPBACK) -> int:
    """docs/redis.md, the bound: what `processes` may admit of one user asking each one every
    `PACE` seconds, with Redis `round_trip` seconds away."""
    return admitted_at_most(
        LIMIT, processes=processes, rate=1 / PACE, interval=INTERVAL, round_trip=round_trip
    )


def paced_past_the_limit(client: httpx2.Client, proxies: list[Served]) -> list[httpx2.Response]:
    """One user's page views, in turn from each process, `PACE` apart, until four times
    the limit have been answered (twice what two processes may admit): the limit is
    reached within the first few syncs, and the rest are asked well past it. A count,
    not a duration: it takes 2-5 s."""
    answers: list[httpx2.Response] = []
    while len(answers) < 4 * LIMIT:
        for proxy in proxies:
            answers.append(client.get(f"{proxy.url}/widget", headers=proxy.cookie(EMAIL)))
        time.sleep(PACE)
    return answers


def assert_shared(answers: list[httpx2.Response], most: int) -> None:
    """Admitted at least the limit and at most `most` (the bound); every refusal says
    when to come back: held for a sync (1 s), or over the limit (counted within the last
    few seconds, the oldest leave the minute 52-65 s from now)."""
    statuses = [r.status_code for r in answers]
    admitted = statuses.count(200)
    print(f"admitted {admitted} of {len(answers)} (limit {LIMIT}, bound {most})")
    assert set(statuses) <= {200, 429}
    assert LIMIT <= admitted <= most, (admitted, most)
    assert len(answers) >= 2 * most  # the user kept asking well past the limit
    for answer in answers:
        if answer.status_code == 429:
            wait = int(answer.headers["retry-after"])
            assert wait == 1 or 45 <= wait <= 65, wait
