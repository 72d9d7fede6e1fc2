"""Several widgets in one app: each the app `create_app` builds, mounted at its path.

    WidgetsApp ─ GET /rewards/widget ─→ the rewards widget's app (root_path /rewards)
               ├ GET /support/…     ─→ the support widget's app
               └ /healthz, /readyz, /metrics: the process's own (`root`)

The dispatch is a prefix match on the path, with the ASGI `root_path` set as Starlette's
`Mount` sets it: each widget sees what it sees mounted in a merchant's app (its short
path, its checks, the URLs it emits all include the mount). Nothing else is added to a
widget's request: the widget's own front logs it, counts it and gates it.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import httpx2
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..application import create_app
from ..config import WidgetsConfig
from ..health import MetricsEndpoint
from ..ops.metrics import Metrics
from ..ops.requestlog import LineSink, through_logging
from .root import Readiness, health
from .shared import SharedParts

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

F = TypeVar("F", bound=Callable[..., Any])


def returns_a_coroutine(function: F) -> F:
    """Mark `function`, which returns a coroutine, as a coroutine function for whoever
    inspects the app: uvicorn tells an ASGI 3 app from an ASGI 2 one so."""
    mark = getattr(inspect, "markcoroutinefunction", None)  # Python 3.12+
    if mark is not None:
        return mark(function)  # type: ignore[no-any-return]
    # Python 3.11: what `asyncio.iscoroutinefunction` reads.
    setattr(function, "_is_coroutine", getattr(asyncio.coroutines, "_is_coroutine"))  # noqa: B009, B010
    return function


class WidgetsApp(Starlette):
    """`mounts`: each widget's mount path and app, none inside another (`config.mounts`)."""

    def __init__(self, mounts: Sequence[tuple[str, Starlette]], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.mounts = tuple(mounts)
        self._prefixes: tuple[tuple[str, int, Starlette], ...] = tuple(
            (path, len(path), app) for path, app in mounts
        )

    @returns_a_coroutine
    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Coroutine[Any, Any, None]:
        # Not a coroutine itself: it hands the server the widget's own coroutine, so that a
        # page view awaits no frame of the dispatch's (callgrind: BENCHMARKS.md, issue 26).
        if scope["type"] != "lifespan":
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            if root and path.startswith(root):  # under serve --root-path
                path = path[len(root) :]
            for prefix, length, app in self._prefixes:
                if path.startswith(prefix) and (len(path) == length or path[length] == "/"):
                    scope["root_path"] = root + prefix if root else prefix
                    return app(scope, receive, send)
        return super().__call__(scope, receive, send)


def create_widgets_app(
    config: WidgetsConfig,
    *,
    metrics: Metrics | None = None,
    request_log: LineSink = through_logging,
    build: Callable[..., Starlette] = create_app,
    transport: httpx2.AsyncBaseTransport | None = None,
    tracer: Tracer | None = None,
    shared_dir: str | None = None,
) -> WidgetsApp:
    """Every widget of `config` in one app, sharing one upstream client per vendor, one
    Redis pool per CACHE_URL, one metrics registry (labelled by widget) and `request_log`.
    `metrics`: carried over from an earlier generation (a reload); `widgets=True`.
    `build`: each widget's app (`create_app`); `transport`: under the upstream clients,
    instead of the network (tests and benchmarks only); `tracer`: every widget's
    requests and upstream calls traced (`serve` with OTEL_*); `shared_dir`: the folder
    the workers of `serve --config` share, where each widget (its own subfolder) learns
    of forgets with `memory://`, as `serve` does (docs/revocation.md)."""
    metrics = metrics if metrics is not None else Metrics(widgets=True)
    parts = SharedParts(
        transport=transport,
        tracer=tracer,
        metrics=metrics,
        widgets=[(widget.name, widget.settings) for widget in config.widgets],
    )
    mounts = [
        (
            widget.mount,
            build(
                widget.settings,
                metrics=metrics.for_widget(widget.name),
                request_log=request_log,
                tracer=tracer,
                shared=parts.of(widget.name),
                shared_dir=_folder(shared_dir, widget.name),
            ),
        )
        for widget in config.widgets
    ]
    names = [(widget.name, widget.mount) for widget in config.widgets]
    process = config.process
    routes = [
        Route("/healthz", health(names), methods=["GET"]),
        Route("/readyz", Readiness(names, [app for _, app in mounts]).respond, methods=["GET"]),
    ]
    if process.metrics_enabled:
        endpoint = MetricsEndpoint(metrics, process.metrics_allow)
        routes.append(Route("/metrics", endpoint.respond, methods=["GET"]))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            stack.push_async_callback(parts.aclose)  # last: after every widget's shutdown
            for _, widget in mounts:
                await stack.enter_async_context(widget.router.lifespan_context(widget))
            yield

    app = WidgetsApp(mounts, routes=routes, lifespan=lifespan)
    app.router.redirect_slashes = False
    app.state.metrics = metrics
    app.state.shared = parts
    return app


def _folder(shared_dir: str | None, widget: str) -> str | None:
    """A widget's own folder in `shared_dir`: each widget's forgets its own file."""
    if shared_dir is None:
        return None
    folder = os.path.join(shared_dir, f"widget-{widget}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return folder
