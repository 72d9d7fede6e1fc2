"""One log line and the metrics of every request, and its request id.

Pure ASGI: it wraps `send` to see the status and add `X-Request-ID`, and measures the
time; nothing is built per request beyond what the log line needs. The request id
comes from `X-Request-ID` when the peer is a trusted proxy (so one id follows a
request through the whole chain), else it is generated; error pages show it.

A request refused before admission counted it (a 404, 405, 403, 414, 431, a bad
colour: any 4xx without a client address noted) is counted against its client IP here
(`IpLimit`, in this process: no round trip), so refusals exhaust the IP limit too. A
refusal before routing (a gate's, or no route) counts under the route `unmatched` on
either path, the widget page's short one included. Every field of the line that a
client chose (path, method, address) is cut to `logs.MAX_FIELD_CHARS`.

The line itself goes to a `LineSink`: by default `through_logging`, a record of the
`widget_proxy.request` logger (mounted in a merchant's app, their logging configuration
decides where it goes); under `widget-proxy serve`, which owns the process and its log
configuration, `fastlines.FastLines` writes the same bytes without `logging`'s
per-record work (docs/logging.md).
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Protocol

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .logs import cut
from .metrics import Metrics

log = logging.getLogger("widget_proxy.request")
# The line's message: method, path, status, ms, request id, cache, client, " error=…".
MESSAGE: Final = "%s %s %d %.1fms request_id=%s cache=%s client=%s%s"
_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")


# A random prefix per process and a counter: unique across workers and restarts,
# without a system call per request (request ids are labels, not secrets).
_PREFIX: Final = secrets.token_hex(4)
_COUNTER: Final = itertools.count(0x10000000)  # eight hex digits from the first


def new_request_id() -> str:
    return _PREFIX + hex(next(_COUNTER))[2:]  # (a format spec costs three times as much)


def request_id(scope: Scope) -> str:
    """The id of this request, as RequestLog gave it (or a new one, outside it)."""
    state = scope.get("state")
    found = state.get("request_id") if isinstance(state, dict) else None
    return found if isinstance(found, str) else new_request_id()


def with_id(headers: list[tuple[bytes, bytes]], rid: str) -> list[tuple[bytes, bytes]]:
    """`headers` with `X-Request-ID`, unless the app set one (the same list then)."""
    for key, _ in headers:  # ASGI apps send lower-case names (Starlette's and ours do)
        if key == b"x-request-id":
            return headers
    return [*headers, (b"x-request-id", rid.encode())]


def note(scope: Scope, **fields: str) -> None:
    """Tell the request's log line something (its cache outcome, its error)."""
    scope.setdefault("state", {}).update(fields)


def note_field(scope: Scope, name: str, value: str) -> None:
    """`note(scope, name=value)`, for the warm view's own notes (its client and cache
    outcome): without the keyword dictionary and the state's spare `{}`."""
    state = scope.get("state")
    if state is None:
        state = scope["state"] = {}
    state[name] = value


class Proxies(Protocol):
    """Which peers are trusted proxies, and the client behind them
    (`security.forwarded.TrustedProxies`, handed in by `create_app`)."""

    def peer(self, scope: Scope) -> str: ...

    def trusts(self, address: str) -> bool: ...

    @property
    def trusts_anyone(self) -> bool:
        """False when `trusts` is False for every peer (fixed for the proxies' life)."""

    def client_ip(self, scope: Scope, headers: Mapping[str, str]) -> str: ...


class LineSink(Protocol):
    """Where a request's one line goes: its level, then its fields as the request has
    them (`error` empty when there was none); the sink cuts what a client chose."""

    def __call__(
        self,
        level: int,
        method: str,
        path: str,
        status: int,
        seconds: float,
        request_id: str,
        cache: str,
        client_ip: str,
        error: str,
    ) -> None: ...


def record_parts(
    method: str,
    path: str,
    status: int,
    seconds: float,
    request_id: str,
    cache: str,
    client_ip: str,
    error: str,
) -> tuple[tuple[object, ...], dict[str, object]]:
    """The request line's `MESSAGE` arguments and its record's extras (the JSON format
    shows them), every field a client chose cut: what `through_logging` logs and
    `FastLines` hands its handler when a line needs the filter."""
    method, path, client_ip = cut(method), cut(path), cut(client_ip)
    fields: dict[str, object] = {
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
        "request_id": request_id,
        "cache": cache,
        "client_ip": client_ip,
    }
    if error:
        fields["error"] = cut(error)
    suffix = f" error={error}" if error else ""
    return (method, path, status, seconds * 1000, request_id, cache, client_ip, suffix), fields


def through_logging(
    level: int,
    method: str,
    path: str,
    status: int,
    seconds: float,
    request_id: str,
    cache: str,
    client_ip: str,
    error: str,
) -> None:
    """The line as a record of `widget_proxy.request`: the reference `FastLines` writes
    byte for byte."""
    args, fields = record_parts(method, path, status, seconds, request_id, cache, client_ip, error)
    log.log(level, MESSAGE, *args, extra=fields)


class IpLimit(Protocol):
    """Counts a refused request against its client IP's limit
    (`security.ratelimit.RateLimits`, handed in by `create_app`)."""

    def tally_ip(self, ip: str) -> None: ...


class Sendable(Protocol):
    """An answer known before any of it is sent (`responses.Answer`)."""

    status_code: int
    raw_headers: list[tuple[bytes, bytes]]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


Answerer = Callable[[Scope, Receive], Awaitable[Sendable]]


class RequestLog:
    """The front of the app: every request's id, metrics and one line.

    `answers` (path → answerer, GETs only, paths within the app's `root_path`): the
    widget page's short path (`fastpath.ShortPath`). Its answer is known before a byte
    leaves, so it is sent as it is; any other request goes through `app`, its answer's
    head seen through a wrapped `send`. Either way the same steps, in `answering` and
    `record`: the line and metrics as the answer's head leaves (500 if none does),
    `X-Request-ID` on it.
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        proxies: Proxies,
        ip_limit: IpLimit | None = None,
        lines: LineSink = through_logging,
        answers: Mapping[str, Answerer] | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.proxies = proxies
        self.ip_limit = ip_limit
        self.lines = lines
        self.answers = answers or {}
        # Metric children bound once per label set: labels() takes a lock each time.
        self._bound: dict[tuple[str, int], tuple[Callable[[], None], Any]] = {}
        # No trusted proxy (the usual case): no peer's `X-Request-ID` is read, so no
        # request asks whether its peer is one.
        self._incoming_ids = proxies.trusts_anyone

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = self.begin(scope)  # None: a request log further out has it
        answerer = None
        if scope["method"] == "GET" and self.answers:
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            if root and path.startswith(root):  # mounted: matched as the router would
                path = path[len(root) :]
            answerer = self.answers.get(path)
        if answerer is None:
            await self._streamed(scope, receive, send, state, started)
            return
        try:
            answer = await answerer(scope, receive)
        except BaseException:
            if state is not None:  # its crash page failed too: the line still says so
                self.record(scope, state, 500, started)
            raise
        if state is not None:
            answer.raw_headers = self.answering(
                scope, state, answer.status_code, answer.raw_headers, started
            )
        await answer(scope, receive, send)

    async def _streamed(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        state: dict[str, str] | None,
        started: float,
    ) -> None:
        """Through the app, its answer's head seen on its way out. (A method of its own:
        the closure's cells would cost the short path too.)"""
        if state is None:
            await self.app(scope, receive, send)
            return
        answered = False

        async def send_with_id(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
                message["headers"] = self.answering(
                    scope, state, message["status"], message.get("headers", []), started
                )
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if not answered:  # no answer: an error, or the client went away
                self.record(scope, state, 500, started)

    def answering(
        self,
        scope: Scope,
        state: dict[str, str],
        status: int,
        headers: list[tuple[bytes, bytes]],
        started: float,
    ) -> list[tuple[bytes, bytes]]:
        """An answer's head is leaving: its line and metrics (written by the time the
        client has its answer), and its headers with `X-Request-ID`."""
        self._record(scope, state, status, time.perf_counter() - started)  # (`record`)
        return with_id(headers, state["request_id"])

    def begin(self, scope: Scope) -> dict[str, str] | None:
        """Give an HTTP request its id, in its state; None if a `RequestLog` further
        out logs it (a proxy mounted in an app that logs its requests)."""
        state: dict[str, str] | None = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        elif "request_id" in state:
            return None
        incoming = self._incoming(scope) if self._incoming_ids else None
        state["request_id"] = incoming or new_request_id()
        return state

    def record(self, scope: Scope, state: dict[str, str], status: int, started: float) -> None:
        """The request's metrics and its one line (`started`: its `perf_counter`)."""
        self._record(scope, state, status, time.perf_counter() - started)

    def _incoming(self, scope: Scope) -> str | None:
        """The `X-Request-ID` a trusted proxy sent, if it is a usable one."""
        if not self.proxies.trusts(self.proxies.peer(scope)):
            return None  # (asked first: with no trusted proxy it is one empty check)
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                incoming = value.decode("latin-1")
                return incoming if _REQUEST_ID.fullmatch(incoming) else None
        return None

    def _record(self, scope: Scope, state: dict[str, str], status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", "unmatched")
        bound = self._bound.get((route, status))
        if bound is None:
            bound = self._bound[route, status] = (
                self.metrics.tally.counter(self.metrics.requests.labels(route, status)),
                self.metrics.request_seconds.labels(route),
            )
        bound[0]()
        bound[1].observe(seconds)
        if 400 <= status < 500 and "client_ip" not in state and self.ip_limit is not None:
            # Refused before admission counted it: it counts all the same.
            state["client_ip"] = self.proxies.client_ip(scope, Headers(scope=scope))
            self.ip_limit.tally_ip(state["client_ip"])
        level = logging.WARNING if status >= 500 else logging.INFO
        if not log.isEnabledFor(level):
            return
        self.lines(
            level,
            scope["method"],
            scope["path"],
            status,
            seconds,
            state["request_id"],
            state.get("cache", "-"),
            state.get("client_ip") or self.proxies.client_ip(scope, Headers(scope=scope)),
            state.get("error", ""),
        )
