"""`python -m bench.inprocess`: a warm page view's own cost, without the network.

Calls the proxy's ASGI app directly (no uvicorn, no sockets, no load generator) with
the scope uvicorn would build for a signed-in user's `GET /widget`, after warming
every user, and prints µs per view for the whole app and for the limit's bare route,
best of a few runs. Under `valgrind --tool=callgrind` (`--views` small) the
instruction count per view is a figure the machine's noise doesn't move:

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \\
        .venv/bin/python -m bench.inprocess --views 2000 --runs 1 --only proxy

The vendor is the Returning.AI stand-in, reached in process through httpx2's ASGI
transport. Logging is as the server configures it (`LOG_LEVEL=INFO`, text lines, or
`--format json`), written to /dev/null, so the request line's cost is counted:
`serve`'s way (its `FastLines`), or `--lines logging` as a mounted proxy's lines go
(`logging`); `--no-log` writes none. `--trace`: tracing on, as `serve` runs it when
`OTEL_*` asks (docs/tracing.md), its spans dropped instead of exported. `--widgets two`
measures the same widget mounted at /rewards beside a Hissuno chat, in the app
`serve --config` runs (issue 26).
"""

from __future__ import annotations

import argparse
import asyncio
import logging.config
import os
import secrets
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx2
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bench.apps import StaticPage
from bench.users import cookies
from bench.widgets import MOUNT, two_widgets
from widget_proxy.application import create_app
from widget_proxy.demo import demo_settings
from widget_proxy.ops.fastlines import FastLines
from widget_proxy.ops.logs import log_config
from widget_proxy.ops.requestlog import LineSink, through_logging
from widget_proxy.providers.returningai import ReturningAIStandIn

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer


def scope_for(cookie: str, path: str = "/widget") -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", b"wrk"),
            (b"accept", b"*/*"),
            (b"cookie", cookie.encode()),
        ],
    }


class Sink:
    """The server's side of `send`: keeps the status, drops the bytes."""

    def __init__(self) -> None:
        self.status = 0

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def views(
    app: ASGIApp, cookie_values: Sequence[str], count: int, path: str = "/widget"
) -> float:
    """Seconds for `count` views, users in turn; every answer must be a 200."""
    templates = [scope_for(c, path) for c in cookie_values]
    sink = Sink()
    receive: Receive = _receive
    send: Send = sink
    started = time.perf_counter()
    for n in range(count):
        template = templates[n % len(templates)]
        scope = dict(template)  # uvicorn builds a new scope (and state) per request
        scope["headers"] = list(template["headers"])
        await app(scope, receive, send)
        if sink.status != 200:
            raise RuntimeError(f"view {n} answered {sink.status}")
    return time.perf_counter() - started


def tracing(*, logs: bool) -> Tracer:
    """A tracer as `serve`'s (the SDK's provider, a batch processor), its spans dropped
    instead of exported: what is measured is what a request pays, not the export."""
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Dropped(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropped()))
    return provider.get_tracer("widget_proxy")


async def run(args: argparse.Namespace) -> dict[str, float]:
    vendor = ReturningAIStandIn(
        api_key="bench-key-" + secrets.token_hex(8),
        community_id="bench",
        signing_key=secrets.token_urlsafe(32),
    )
    settings = demo_settings(
        vendor,
        "http://127.0.0.1:9",
        LOGIN_URL="",
        RATE_LIMIT_PER_MINUTE="1000000000",
        RATE_LIMIT_IP_PER_MINUTE="1000000000",
        CACHE_URL="memory://",
    )
    lines: LineSink = through_logging
    tracer = tracing(logs=args.log) if args.trace else None
    if args.log:
        sink = open(os.devnull, "w")  # noqa: SIM115, ASYNC230 (set-up, once)
        config = log_config(level="INFO", fmt=args.format, secrets=settings.secrets)
        config["handlers"]["stderr"]["stream"] = sink
        logging.config.dictConfig(config)
        if tracer is not None:  # as `serve` does: the lines carry trace ids, through logging
            from widget_proxy.ops.spans import TraceIds

            for handler in logging.getLogger("widget_proxy").handlers:
                handler.addFilter(TraceIds())
        fast = FastLines.serving() if args.lines == "fast" else None
        if fast is not None:
            lines = fast[0]
    else:
        logging.getLogger("widget_proxy").setLevel(logging.WARNING)
    transport = httpx2.ASGITransport(app=vendor.app())
    app: Starlette = create_app(settings, transport=transport, request_log=lines, tracer=tracer)
    path = "/widget"
    if args.widgets == "two":  # the same widget, mounted beside another (bench.widgets)
        app, path = two_widgets(settings, lines, transport), f"{MOUNT}/widget"
    users = cookies(settings.session_secret.reveal(), args.users)
    results: dict[str, float] = {}
    async with app.router.lifespan_context(app):
        await views(app, users, len(users), path)  # warm: one signin per user, one page
        body, headers = await _answer(app, users[0], path)
        # The limit as the benchmark serves it (bench.apps.limit_app): one Starlette route.
        limit_app = Starlette(routes=[Route("/widget", StaticPage(body, headers), methods=["GET"])])
        limit: dict[str, tuple[ASGIApp, str]] = {
            "limit": (limit_app, "/widget"),
            "proxy": (app, path),
        }
        for name, (target, at) in limit.items():
            if args.only and name != args.only:
                continue
            best = min([await views(target, users, args.views, at) for _ in range(args.runs)])
            results[name] = best / args.views * 1e6
    return results


async def _answer(app: ASGIApp, cookie: str, path: str) -> tuple[bytes, list[tuple[str, str]]]:
    got: dict[str, Any] = {"body": b""}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            got["headers"] = [
                (k.decode(), v.decode())
                for k, v in message["headers"]
                if k not in (b"content-length", b"x-request-id")
            ]
        else:
            got["body"] += message.get("body", b"")

    await app(scope_for(cookie, path), _receive, send)
    return got["body"], got["headers"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--views", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=("limit", "proxy"))
    parser.add_argument("--no-log", dest="log", action="store_false", help="request lines off")
    parser.add_argument(
        "--lines",
        choices=("fast", "logging"),
        default="fast",
        help="request lines as `serve` writes them (fast), or through logging (mounted)",
    )
    parser.add_argument(
        "--trace", action="store_true", help="tracing on (spans made and dropped: no export)"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text", help="LOG_FORMAT")
    parser.add_argument(
        "--widgets",
        choices=("one", "two"),
        default="one",
        help="the widget alone (create_app), or mounted at /rewards beside a second"
        " (serve --config's app: bench.widgets)",
    )
    args = parser.parse_args(argv)
    results = asyncio.run(run(args))
    for name, micros in results.items():
        print(f"{name:6} {micros:8.1f} µs per view")
    if len(results) == 2:
        print(f"ratio  {results['limit'] / results['proxy']:8.2f} x (limit time / proxy time)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
