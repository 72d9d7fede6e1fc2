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
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .logs import cut
from .metrics import Metrics

log = logging.getLogger("widget_proxy")
_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")


# A random prefix per process and a counter: unique across workers and restarts,
# without a system call per request (request ids are labels, not secrets).
_PREFIX: Final = secrets.token_hex(4)
_COUNTER: Final = itertools.count(1)


def new_request_id() -> str:
    return f"{_PREFIX}{next(_COUNTER):08x}"


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


class Proxies(Protocol):
    """Which peers are trusted proxies, and the client behind them
    (`security.forwarded.TrustedProxies`, handed in by `create_app`)."""

    def peer(self, scope: Scope) -> str: ...

    def trusts(self, address: str) -> bool: ...

    def client_ip(self, scope: Scope, headers: Mapping[str, str]) -> str: ...


class IpLimit(Protocol):
    """Counts a refused request against its client IP's limit
    (`security.ratelimit.RateLimits`, handed in by `create_app`)."""

    def tally_ip(self, ip: str) -> None: ...


class RequestLog:
    def __init__(
        self, app: ASGIApp, metrics: Metrics, proxies: Proxies, ip_limit: IpLimit | None = None
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.proxies = proxies
        self.ip_limit = ip_limit
        # Metric children bound once per label set: labels() takes a lock each time.
        self._bound: dict[tuple[str, int], tuple[Callable[[], None], Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        state = self.begin(scope) if scope["type"] == "http" else None
        if state is None:  # not HTTP, or logged further out
            await self.app(scope, receive, send)
            return
        rid = state["request_id"]
        status, logged = 500, False
        head = scope["method"] == "HEAD"

        async def send_with_id(message: Message) -> None:
            nonlocal status, logged
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = with_id(message.setdefault("headers", []), rid)
                # A HEAD answer is complete with its headers (the client reads no body):
                # logged before they leave, as any other answer before its last byte.
                last = head
            else:
                last = message["type"] == "http.response.body" and not message.get("more_body")
            if last and not logged:
                # Logged before the last byte leaves, so the line is written by the time
                # the client has its answer.
                self.record(scope, state, status, started)
                logged = True
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if not logged:  # no complete answer: an error, or the client went away
                self.record(scope, state, status, started)

    def begin(self, scope: Scope) -> dict[str, str] | None:
        """Give an HTTP request its id, in its state; None if a `RequestLog` further
        out logs it (a proxy mounted in an app that logs its requests)."""
        state: dict[str, str] = scope.setdefault("state", {})
        if "request_id" in state:
            return None
        state["request_id"] = self._incoming(scope) or new_request_id()
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
        fields = {
            "method": cut(scope["method"]),
            "path": cut(scope["path"]),
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "request_id": state["request_id"],
            "cache": state.get("cache", "-"),
            "client_ip": cut(
                state.get("client_ip") or self.proxies.client_ip(scope, Headers(scope=scope))
            ),
        }
        error = state.get("error")
        if error:
            fields["error"] = cut(error)
        log.log(
            level,
            "%s %s %d %.1fms request_id=%s cache=%s client=%s%s",
            fields["method"],
            fields["path"],
            status,
            seconds * 1000,
            fields["request_id"],
            fields["cache"],
            fields["client_ip"],
            f" error={error}" if error else "",
            extra=fields,
        )
