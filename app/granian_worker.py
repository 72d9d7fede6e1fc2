"""What each granian worker runs for `widget-proxy serve --server granian`.

serve's app (`serve.serve_app`: `Reloading`, whose SIGHUP swaps the settings) in each
worker process, with what uvicorn would have done around it (docs/serving.md), and
nothing around a request that uvicorn doesn't put there too:

- **The mount path** (`MountPath`, with `--root-path` only). granian's
  `--url-path-prefix` sets `root_path` and leaves `path` as it arrived; uvicorn's
  `--root-path` also puts it in front of `path` and `raw_path`, as the ASGI spec has
  it: a reverse proxy strips the prefix (the README's nginx does), the app sees the
  path the browser asked for.
- **`--proxy-headers`**: uvicorn's own `ProxyHeadersMiddleware`, believing
  `--forwarded-allow-ips` as uvicorn does.
- **Readiness.** Once the app has started (its SIGHUP handler in place), `ready` is
  set: the supervisor passes SIGHUP on only to a worker that handles it.
- **The drain's end.** On SIGTERM granian stops accepting and waits for its
  connections however long they take. Once `SHUTDOWN_TIMEOUT` has passed, the
  supervisor (`granian_server`) sends `CANCEL`: the requests in flight are cancelled
  (`Reloading.cancel_requests`), as uvicorn does after its `timeout_graceful_shutdown`,
  and the lifespan's shutdown follows (the rate counts' last sync, the upstream client
  and the store closed), once they have ended (`Reloading` waits for them: granian's
  drain ends with the last connection, not with a request whose client has gone).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable
from functools import partial
from multiprocessing.synchronize import Event
from typing import Any, Final, cast

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn._types import ASGI3Application
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from .multi.serving import serve_widgets
from .reload import Reloading
from .serve import serve_app

log = logging.getLogger("widget_proxy")

# The supervisor's word that SHUTDOWN_TIMEOUT has passed: cancel what still runs.
CANCEL: Final = signal.SIGUSR1


class MountPath:
    """The mount path (`root_path`, granian's `--url-path-prefix`) in front of the path,
    as uvicorn's `--root-path` puts it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        root: str = scope.get("root_path", "")
        if root and scope["type"] in ("http", "websocket"):
            scope["path"] = root + scope["path"]
            scope["raw_path"] = root.encode("ascii") + scope["raw_path"]
        await self.app(scope, receive, send)


def worker_app(
    *,
    root_path: str = "",
    proxy_headers: bool = False,
    forwarded_allow_ips: list[str] | None = None,
    metrics_dir: str | None = None,
    config: str | None = None,
    ready: Event | None = None,
) -> ASGIApp:
    """What granian calls in each worker (a factory): serve's app (`config`: serve
    --config's, every widget of the file), as uvicorn would serve it with the same flags."""
    reloading: Reloading[Any] = (
        serve_app(proxy_headers=proxy_headers, metrics_dir=metrics_dir)
        if config is None
        else serve_widgets(config=config, proxy_headers=proxy_headers, metrics_dir=metrics_dir)
    )
    reloading.on_started(partial(serving, reloading.cancel_requests, ready))
    app: ASGIApp = reloading
    if root_path:
        app = MountPath(app)
    if proxy_headers:  # what uvicorn puts around an app with --proxy-headers
        trusted = forwarded_allow_ips if forwarded_allow_ips is not None else "127.0.0.1"
        inner = cast(ASGI3Application, app)
        app = cast(ASGIApp, ProxyHeadersMiddleware(inner, trusted_hosts=trusted))
    return app


def serving(cancel_requests: Callable[[], int], ready: Event | None) -> None:
    """The app has started: CANCEL cancels its requests, and the worker is ready."""
    if threading.current_thread() is threading.main_thread():
        asyncio.get_running_loop().add_signal_handler(CANCEL, cancel, cancel_requests)
    log.info("Application startup complete (granian worker %d)", os.getpid())
    if ready is not None:
        ready.set()


def cancel(cancel_requests: Callable[[], int]) -> None:
    """Cancel every request still running (the drain's time is up)."""
    if count := cancel_requests():
        log.error("SHUTDOWN_TIMEOUT passed: cancelled %d running request(s)", count)
