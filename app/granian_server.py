"""`widget-proxy serve --server granian`: serve's app under granian (the extra `granian`).

granian always runs a supervisor and worker processes (one with `--workers 1`); each
worker runs `granian_worker.worker_app`. `GranianWorkers` is granian's supervisor
with what serve does under uvicorn (docs/serving.md):

- **SIGHUP.** granian's own supervisor starts every worker anew, each reading the
  settings again: with an invalid `.env` the new worker exits, and granian stops the
  whole server.
  Here, as in `workers.ReloadingWorkers`, the supervisor checks the new settings first
  (refused with their problems, no worker disturbed), then passes SIGHUP on to each
  worker that serves, which swaps its settings in place (`reload.Reloading`).
- **SIGTERM.** granian waits for a connection's requests however long they take (or,
  with `--workers-kill-timeout`, kills the worker, its lifespan's shutdown never run),
  and not for a request whose client has gone. Here they get `SHUTDOWN_TIMEOUT` (the
  app closes under none of them: `reload.Reloading`), then the workers cancel what
  still runs and close (`granian_worker.CANCEL`), and a worker still there
  `CLOSE_TIMEOUT` later is killed.
- **A worker that dies** is started again, as uvicorn's supervisor does.
- **The request head** is bounded by hyper's read buffer (`http1_buffer_size`): the
  head bound of `security/bounded.py` rounded up to a power of two (`read_buffer`).
  HTTP/1.1 only, as uvicorn serves (HTTP/2's header bound is another), and no
  WebSocket (the app has none).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from functools import partial
from multiprocessing.connection import wait
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, Final

from granian.constants import HTTPModes, Interfaces, Loops
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server.mp import MPServer, WorkerProcess

from .config import WidgetsConfig
from .granian_worker import CANCEL, worker_app
from .multi.serving import config_problems
from .serve import serve_problems
from .settings import Settings
from .workers import refused

log = logging.getLogger("widget_proxy")

START_TIMEOUT: Final = 30.0  # how long a SIGHUP waits for a worker still starting
CLOSE_TIMEOUT: Final = 10.0  # a worker's lifespan shutdown, after its requests are cancelled
BACKLOG: Final = 2048  # uvicorn's
# Workers start as fresh interpreters, as uvicorn's do: a forked one would share what
# the supervisor's modules drew at import (the request ids' random prefix, among others).
START_METHOD: Final = "spawn"
MIN_BUFFER: Final = 8192  # the least granian takes
# granian's loggers, given serve's handler as uvicorn's are.
LOGGERS: Final = ("_granian", "granian.access")


class GranianWorkers(MPServer):
    """granian's supervisor, with serve's SIGHUP and SIGTERM (the module's docstring)."""

    def __init__(
        self,
        *,
        check: Callable[[Any], list[str]],
        load: Callable[[], object] = Settings.load,
        grace: float,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self._check = check
        self._load = load  # what a SIGHUP asks for: the settings, or serve --config's file
        self._grace = grace
        self._ready: dict[int, Event] = {}  # each worker's, by its index

    def _spawn_worker(
        self, idx: int, target: Any, callback_loader: Any, *rest: Any
    ) -> WorkerProcess:
        ready = self._ready[idx] = multiprocessing.get_context(START_METHOD).Event()
        loader = partial(callback_loader, ready=ready)
        worker: WorkerProcess = super()._spawn_worker(idx, target, loader, *rest)
        return worker

    def _reload(self, spawn_target: Any, target_loader: Any) -> None:
        self.reload_signal = False
        self.main_loop_interrupt.clear()
        if refused(self._check, self._load):
            return
        log.info("SIGHUP received: passing it on to %d workers", len(self.wrks))
        for worker in list(self.wrks):
            # A worker still starting would end on SIGHUP, and may have read the old
            # settings: it gets the signal once its app has started.
            if not self._serving(worker):
                log.warning("worker [%s] is not serving; SIGHUP not passed on", worker.inner.pid)
                continue
            signal_worker(worker, signal.SIGHUP)

    def _serving(self, worker: WorkerProcess) -> bool:
        ready = self._ready[worker.idx]
        deadline = time.monotonic() + START_TIMEOUT
        while not ready.wait(0.1):
            if self.interrupt_signal or not running([worker], 0.0) or time.monotonic() > deadline:
                return False
        return True

    def _stop_workers(self) -> None:
        workers = list(self.wrks)
        for worker in workers:
            worker.terminate()  # SIGTERM: granian stops accepting, requests in flight go on
        late = running(workers, self._grace)
        for worker in late:
            signal_worker(worker, CANCEL)
        for worker in running(late, CLOSE_TIMEOUT):
            log.error("worker [%s] did not stop; killed", worker.inner.pid)
            worker.kill()
            worker.join()
        self.wrks.clear()


def running(workers: list[WorkerProcess], seconds: float) -> list[WorkerProcess]:
    """Those of `workers` still running `seconds` from now (or once all have ended).

    Read from each process's sentinel, not `is_alive()`: granian's watcher thread joins
    each worker too, and whichever thread loses the race to reap it sees no exit code.
    """
    deadline = time.monotonic() + seconds
    left = list(workers)
    while left:
        remaining = max(0.0, deadline - time.monotonic())
        ended = wait([worker.inner.sentinel for worker in left], remaining)
        left = [worker for worker in left if worker.inner.sentinel not in ended]
        if time.monotonic() >= deadline:
            break
    return left


def signal_worker(worker: WorkerProcess, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it has just ended
        if worker.inner.pid is not None:
            os.kill(worker.inner.pid, signum)


def serve_granian(
    *,
    host: str,
    port: int,
    workers: int,
    root_path: str,
    proxy_headers: bool,
    forwarded_allow_ips: list[str],
    log_config: dict[str, Any],
    log_level: str,
    max_head: int,
    shutdown_timeout: float,
    metrics_dir: str | None = None,
    config: str | None = None,
) -> int:
    """Run serve's app under granian until SIGTERM (or SIGINT); the exit status.

    `max_head`: the request head's bound (`security.bounded.head_bound`); `config`:
    `serve --config`'s file (its widgets, reloaded whole on SIGHUP); the rest as
    `serve`'s flags.
    """
    multiprocessing.set_start_method(START_METHOD, force=True)  # granian's workers take it
    loader = partial(
        worker_app,
        root_path=root_path,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
        metrics_dir=metrics_dir,
        config=config,
    )
    checks: dict[str, Any] = {
        "check": lambda settings: serve_problems(settings, proxy_headers=proxy_headers)
    }
    if config is not None:
        checks = {
            "check": lambda loaded: config_problems(loaded, proxy_headers=proxy_headers),
            "load": lambda: WidgetsConfig.load(Path(config)),
        }
    server = GranianWorkers(
        **checks,
        grace=shutdown_timeout,
        target=f"{worker_app.__module__}:{worker_app.__qualname__}",  # named in its log
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        loop=Loops.auto,  # uvloop when installed, as uvicorn's default
        http=HTTPModes.http1,
        websockets=False,
        backlog=BACKLOG,
        http1_settings=HTTP1Settings(max_buffer_size=read_buffer(max_head)),
        log_dictconfig=granian_logging(log_config),
        log_level=LogLevels(log_level.lower()),
        log_access=False,  # the app logs one line per request itself
        url_path_prefix=root_path or None,
        respawn_failed_workers=True,
    )
    try:
        server.serve(target_loader=loader, wrap_loader=False)
    except SystemExit as exc:  # granian's, when a worker failed
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def read_buffer(max_head: int) -> int:
    """hyper's read buffer for a head bound: a power of two, the bound hyper keeps to
    exactly (it takes a head up to its buffer's capacity, which grows by powers of two,
    so a bound between two of them would hold or not as the reads fall)."""
    return max(MIN_BUFFER, 1 << (max_head - 1).bit_length())


def granian_logging(config: dict[str, Any]) -> dict[str, Any]:
    """serve's logging configuration, with granian's loggers on its handler."""
    level = config["loggers"]["widget_proxy"]["level"]
    granian = {"handlers": ["stderr"], "level": level, "propagate": False}
    return {**config, "loggers": {**config["loggers"], **dict.fromkeys(LOGGERS, granian)}}
