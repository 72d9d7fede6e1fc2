"""Servers as real processes, started the way users start the proxy and always stopped.

Each server is `python -m uvicorn … --loop uvloop --http httptools --no-access-log` (or,
with `--server granian`, `python -m granian …` as `serve --server granian` configures
it) in a session of its own, so that workers it forks can be found and stopped with it;
or, as served (`Command`), `widget-proxy serve` and a uvicorn at its defaults.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Final

from bench.http import HOST, fetch
from widget_proxy.security.bounded import DEFAULT_MAX_HEAD
from widget_proxy.settings import all_options

REPO: Final = Path(__file__).resolve().parent.parent
START_TIMEOUT: Final = 30.0
STOP_TIMEOUT: Final = 15.0
PR_SET_PDEATHSIG: Final = 1  # from <linux/prctl.h>


class ServerFailed(RuntimeError):
    """A server did not start or died; the message carries the end of its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


def clean_environ() -> dict[str, str]:
    """This environment without any proxy setting, so only the benchmark's apply."""
    names = {option.name for option in all_options()}
    return {k: v for k, v in os.environ.items() if k not in names}


def uvicorn_command(target: str, port: int, workers: int = 1, http: str = "httptools") -> list[str]:
    command = [
        sys.executable, "-m", "uvicorn", target, "--factory", "--app-dir", str(REPO),
        "--host", HOST, "--port", str(port), "--loop", "uvloop", "--http", http,
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    if workers > 1:
        command += ["--workers", str(workers)]
    return command


Command = Callable[[int], list[str]]  # the command line that serves on this port


def widget_proxy_serve(port: int) -> list[str]:
    """`widget-proxy serve` as a merchant runs it: its defaults (LOG_LEVEL=INFO, a JSON
    request line per request on stderr), the settings from the environment."""
    return [sys.executable, "-m", "widget_proxy", "serve", "--host", HOST, "--port", str(port)]


def uvicorn_defaults(target: str) -> Command:
    """uvicorn with nothing but the app and where to listen: its defaults (its access
    log on, a line per request on stderr; uvloop and httptools, when installed)."""
    return lambda port: [
        sys.executable, "-m", "uvicorn", target, "--factory", "--app-dir", str(REPO),
        "--host", HOST, "--port", str(port),
    ]  # fmt: skip


def granian_command(target: str, port: int, workers: int = 1) -> list[str]:
    """granian as `widget-proxy serve --server granian` runs it (`granian_server`):
    HTTP/1.1, its read buffer bounding the head, uvicorn's backlog, uvloop."""
    from widget_proxy.granian_server import BACKLOG, read_buffer  # granian's extra

    return [
        sys.executable, "-m", "granian", target, "--factory", "--interface", "asgi",
        "--working-dir", str(REPO), "--host", HOST, "--port", str(port),
        "--workers", str(workers), "--loop", "uvloop", "--http", "1", "--no-ws",
        "--backlog", str(BACKLOG), "--http1-buffer-size", str(read_buffer(DEFAULT_MAX_HEAD)),
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


def server_command(
    server: str, target: str, port: int, workers: int = 1, http: str = "httptools"
) -> list[str]:
    """`server`'s command line; `http` is uvicorn's protocol (granian has its own)."""
    if server == "granian":
        return granian_command(target, port, workers)
    return uvicorn_command(target, port, workers, http)


class Server:
    def __init__(self, name: str, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.name = name
        self.process = process
        self.port = port
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss(self) -> int:
        """Resident memory of the server's own process, in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise ServerFailed(f"{self.name}: no VmRSS for process {self.pid}")

    def workers(self) -> list[int]:
        """The worker processes the server started (`--workers`; granian's, always), or
        just this one."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])
            # A supervisor may also start multiprocessing's resource tracker.
            if parent == self.pid and b"resource_tracker" not in command:
                found.append(int(entry.name))
        return sorted(found) or [self.pid]

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def wait_ready(self) -> None:
        """Until it answers any HTTP request (the proxy's 401 to a stranger counts)."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise ServerFailed(f"{self.name} exited at start:\n{self.log_tail()}")
            try:
                await asyncio.wait_for(fetch(self.port, "/widget"), 2.0)
            except (TimeoutError, OSError, asyncio.IncompleteReadError):
                if time.monotonic() > deadline:
                    raise ServerFailed(f"{self.name} did not answer:\n{self.log_tail()}") from None
                await asyncio.sleep(0.05)
            else:
                return

    def stop(self) -> None:
        stop_session(self.process)


def stop_session(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM for a graceful stop, then SIGKILL for anything left in its session."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(STOP_TIMEOUT)
    # The process leads its own process group (start_new_session), so the group id is
    # its pid: this reaches what it forked (workers, a sync), and nothing of anyone else's.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(STOP_TIMEOUT)


def die_with_parent() -> None:
    """In the child, before exec: SIGTERM it when the benchmark dies, however it dies.

    The server leads a session of its own, so a terminal's Ctrl+C or a `timeout`
    that kills the benchmark does not reach it; without this, a benchmark killed
    with SIGKILL would leave its servers running.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start(
    name: str,
    target: str,
    env: Mapping[str, str],
    workdir: Path,
    workers: int = 1,
    http: str = "httptools",
    server: str = "uvicorn",
    command: Command | None = None,
) -> Server:
    """`command`: another way to serve than `target` under `server_command`."""
    port = free_port()
    log = workdir / f"{name}-{port}.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter, fixed arguments)
            command(port) if command else server_command(server, target, port, workers, http),
            cwd=workdir,  # not the checkout: a developer's .env there must not apply
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=stderr,  # (uvicorn's access log goes to stdout: a file like the rest)
            stderr=stderr,
            start_new_session=True,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )
    return Server(name, process, port, log)


@asynccontextmanager
async def serving(
    name: str,
    target: str,
    env: Mapping[str, str],
    workdir: Path,
    workers: int = 1,
    http: str = "httptools",
    server: str = "uvicorn",
    command: Command | None = None,
) -> AsyncIterator[Server]:
    """`http`: uvicorn's --http (a name, or a protocol class's import string); `server`:
    uvicorn or granian; `command`: another way to serve (as served)."""
    process = start(name, target, env, workdir, workers, http, server, command)
    try:
        await process.wait_ready()
        yield process
    finally:
        process.stop()
