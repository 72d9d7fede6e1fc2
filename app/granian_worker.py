"""What each granian worker runs for `widget-proxy serve --server granian`.

serve's app (`serve.serve_app`: `Reloading`, whose SIGHUP swaps the settings) in each
worker process, with what uvicorn would have done around it (docs/serving.md):

- **The mount path.** granian's `--url-path-prefix` sets `root_path` and leaves `path`
  as it arrived; uvicorn's `--root-path` also puts it in front of `path` and
  `raw_path`, as the ASGI spec has it: a reverse proxy strips the prefix (the README's
  nginx does), the app sees the path the browser asked for. `Served` does the same.
- **`--proxy-headers`**: uvicorn's own `ProxyHeadersMiddleware`, believing
  `--forwarded-allow-ips` as uvicorn does.
- **The drain.** On SIGTERM granian stops accepting and waits for its connections
  however long they take, but not for a request whose client has gone: the lifespan's
  shutdown waits for every request still running, as uvicorn waits for its tasks.
  Once `SHUTDOWN_TIMEOUT` has passed, the supervisor (`granian_server`) sends `CANCEL`:
  what still runs is cancelled, as uvicorn does after its `timeout_graceful_shutdown`,
  and the lifespan's shutdown (the rate counts' last sync, the upstream client and the
  store closed) follows.
- **Readiness.** Once the app's lifespan has started (its SIGHUP handler in place),
  `ready` is set: the supervisor passes SIGHUP on only to a worker that handles it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from multiprocessing.synchronize import Event
from typing import Any, Final, cast

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn._types import ASGI3Application
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from .serve import serve_app

log = logging.getLogger("widget_proxy")

# The supervisor's word that SHUTDOWN_TIMEOUT has passed: cancel what still runs.
CANCEL: Final = signal.SIGUSR1


class Served:
    """serve's app as a granian worker runs it: uvicorn's path, and its drain's end."""

    def __init__(self, app: ASGIApp, *, ready: Event | None = None) -> None:
        self.app = app
        self._ready = ready
        self._running: set[asyncio.Task[Any]] = set()  # the requests in flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._drained(receive), self._started(send))
            return
        root: str = scope.get("root_path", "")
        if root:  # uvicorn's form: the mount path in front of the path
            scope["path"] = root + scope["path"]
            scope["raw_path"] = root.encode("ascii") + scope["raw_path"]
        task = asyncio.current_task()
        assert task is not None  # granian runs each request as a task
        running = self._running
        running.add(task)
        try:
            await self.app(scope, receive, send)
        finally:
            running.discard(task)

    def _started(self, send: Send) -> Send:
        """The lifespan's `send`: once the app has started, CANCEL is handled and the
        worker is ready."""

        async def sending(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                if threading.current_thread() is threading.main_thread():
                    asyncio.get_running_loop().add_signal_handler(CANCEL, self.cancel)
                log.info("Application startup complete (granian worker %d)", os.getpid())
                if self._ready is not None:
                    self._ready.set()
            await send(message)

        return sending

    def _drained(self, receive: Receive) -> Receive:
        """The lifespan's `receive`: its shutdown waits for the requests still running.
        granian's drain ends with the last connection, and a request whose client has
        gone runs on (as under uvicorn, which waits for its tasks): until CANCEL."""

        async def receiving() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                while self._running:
                    await asyncio.wait(set(self._running))
            return message

        return receiving

    def cancel(self) -> None:
        """Cancel every request still running (the drain's time is up)."""
        running = list(self._running)
        if running:
            log.error("SHUTDOWN_TIMEOUT passed: cancelling %d requests still running", len(running))
        for task in running:
            task.cancel()


def worker_app(
    *,
    proxy_headers: bool,
    forwarded_allow_ips: list[str],
    metrics_dir: str | None = None,
    ready: Event | None = None,
) -> ASGIApp:
    """What granian calls in each worker (a factory): serve's app, as uvicorn would
    serve it with the same flags."""
    app: ASGIApp = Served(
        serve_app(proxy_headers=proxy_headers, metrics_dir=metrics_dir), ready=ready
    )
    if proxy_headers:  # what uvicorn puts around an app with --proxy-headers
        inner = cast(ASGI3Application, app)
        app = cast(ASGIApp, ProxyHeadersMiddleware(inner, trusted_hosts=forwarded_allow_ips))
    return app
