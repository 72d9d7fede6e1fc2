"""What `widget-proxy serve` runs in each process: the app, and what its flags rule out.

`serve_app` is the uvicorn factory (in each worker, with several): the command line
hands it its own flags as arguments (a pickled `functools.partial` reaches spawned
workers), so nothing is passed through the environment.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.applications import Starlette

from .application import create_app
from .ops.fastlines import FastLines
from .ops.metrics import Metrics
from .ops.requestlog import LineSink, through_logging
from .ops.tracing import start as start_tracing
from .options import parsers as p
from .reload import Reloading
from .settings import Settings

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer


def serve_problems(settings: Settings, *, proxy_headers: bool) -> list[str]:
    """What `serve`'s flags rule out in settings that are otherwise valid."""
    if proxy_headers and settings.identity_source == "header":
        return [
            "--proxy-headers hides the direct peer that IDENTITY_SOURCE=header"
            " must check; list the proxy in IDENTITY_PROXIES and TRUSTED_PROXIES instead"
        ]
    return []


def uvicorn_trust(raw: str) -> list[str]:
    """`--forwarded-allow-ips` read as every trust list is (`parsers.networks`, with its
    breadth rule), for uvicorn, which matches a peer as it arrives: each IPv4 range is
    also given in its IPv4-mapped form, as a dual-stack listener's IPv4 peers arrive."""
    found = p.networks(raw)
    mapped = [f"::ffff:{n.network_address}/{96 + n.prefixlen}" for n in found if n.version == 4]
    return [str(n) for n in found] + mapped


def serve_app(*, proxy_headers: bool, metrics_dir: str | None = None) -> Reloading[Settings]:
    """The app of `widget-proxy serve` (a uvicorn factory, run in each worker).

    `proxy_headers`: serve's --proxy-headers; `metrics_dir`: where the workers keep their
    metrics (with several), which a scrape adds up.
    """
    ignore_sighup_until_serving()  # the settings are read just below anyway
    metrics = Metrics(multiprocess_dir=metrics_dir)  # one for every generation
    output = ProcessOutput.start(metrics)

    def build(settings: Settings) -> Starlette:
        return create_app(
            settings,
            metrics=metrics,
            request_log=output.lines,
            tracer=output.tracer,
            shared_dir=metrics_dir,
        )

    loads = 0

    def load() -> Settings:
        # At start the command line warned of stray variables, once for every worker; a
        # reload (an edited .env) is logged by each, as its "settings reloaded" line is.
        nonlocal loads
        loads += 1
        return Settings.load(warn=(lambda line: None) if loads == 1 else None)

    return Reloading(
        load,
        build,
        check=lambda settings: serve_problems(settings, proxy_headers=proxy_headers),
        handle_sighup=True,
        flush=output.flush,
    )


@dataclass(frozen=True, slots=True)
class ProcessOutput:
    """Where a serving process's request lines and spans go, one for every generation
    (`serve` and `serve --config`): `lines`, the request lines' sink; `tracer`, None
    unless OTEL_* asks for traces; `flush`, what a reload and the exit call (None:
    nothing is held)."""

    lines: LineSink
    tracer: Tracer | None
    flush: Callable[[], None] | None

    @classmethod
    def start(cls, metrics: Metrics) -> ProcessOutput:
        # One provider per process, read from OTEL_* once: a reload traces on with it.
        tracing = start_tracing(os.environ)
        if tracing is not None:  # before FastLines looks: a line with its trace id is logging's
            tracing.mark_log_lines()
        # The process and its log configuration are ours: request lines skip `logging`
        # (docs/logging.md), one writer for every generation.
        fast = FastLines.serving(on_drop=metrics.log_lines_dropped.inc)

        def flush() -> None:  # at a reload and the exit: the lines batched, the spans queued
            if fast is not None:
                fast[1].flush()
            if tracing is not None:
                tracing.flush()

        return cls(
            through_logging if fast is None else fast[0],
            None if tracing is None else tracing.tracer,
            None if fast is None and tracing is None else flush,
        )


def ignore_sighup_until_serving() -> None:
    """SIGHUP's default is to end the process: until `Reloading` handles it, ignore it."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
