"""`ReloadingWorkers`: uvicorn's supervisor of worker processes, with SIGHUP passed on.

uvicorn's own supervisor restarts every worker on SIGHUP; this one checks the new
settings in the parent first (`refused`, which granian's supervisor runs too:
`granian_server`), then lets each worker swap its settings in-process
(`reload.Reloading`).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from socket import socket
from typing import Any

from uvicorn.config import Config
from uvicorn.supervisors.multiprocess import Multiprocess

from .reload import REFUSED, unreadable
from .settings import Settings

log = logging.getLogger("widget_proxy")


class ReloadingWorkers(Multiprocess):
    """The parent checks the new settings (refusing them with their problems, so no
    worker is disturbed), then sends SIGHUP to each worker that serves."""

    def __init__(
        self,
        config: Config,
        sockets: list[socket],
        *,
        check: Callable[[Any], list[str]],
        load: Callable[[], object] = Settings.load,
    ) -> None:
        super().__init__(config, sockets)
        self._check = check
        self._load = load  # a config file's widgets, under serve --config

    def handle_hup(self) -> None:
        if refused(self._check, self._load):
            return
        log.info("SIGHUP received: passing it on to %d workers", len(self.processes))
        for process in list(self.processes):
            # A worker still starting has no SIGHUP handler yet (SIGHUP would end it),
            # and may have read the old settings: it gets the signal once it serves.
            timeout = self.config.timeout_worker_healthcheck
            if self.should_exit.is_set():
                return
            if process.pid is None or not process.wait_until_ready(timeout, self.should_exit):
                log.warning("worker [%s] is not serving; SIGHUP not passed on", process.pid)
                continue
            os.kill(process.pid, signal.SIGHUP)


def refused(check: Callable[[Any], list[str]], load: Callable[[], object] = Settings.load) -> bool:
    """A supervisor's look at the settings a SIGHUP asks for, before it passes the signal
    on: True (the refusal logged, with the problems) if they don't load, or `check`
    finds problems in them."""
    try:
        problems = check(load())
    except Exception as exc:  # whatever it is, the supervisor must keep running
        problems = unreadable(exc)
    if problems:
        log.error(REFUSED, "; ".join(problems))
    return bool(problems)
