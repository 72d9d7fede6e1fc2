"""The request's server span, what every span of ours is made with, and trace ids in
log lines. (Its children are made by the traced parts of each layer: admission's in
`security/traced`, the caches' and the injection's in `cache/traced`, the vendor
calls' in `upstream/traced`.)

Imported only when tracing is on (`ops.tracing`): `create_app` then builds its parts
from these traced ones, at composition time; with tracing off it builds the plain
ones, and no request pays for a check. What a span may hold is said once, here:
names, statuses, routes, outcomes, counts, and a keyed hash where a user must be told
apart (`Pseudonyms`); never a key, token, cookie, email, client address, query or path
a client chose, nor an exception's message (its type and our error code only).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import WidgetProxyError

# W3C trace context only, in and out: no baggage (a caller's, or ours, for a vendor).
W3C: Final = TraceContextTextMapPropagator()
METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)


class _AsgiHeaders(Getter[list[tuple[bytes, bytes]]]):
    def get(self, carrier: list[tuple[bytes, bytes]], key: str) -> list[str] | None:
        name = key.lower().encode("latin-1")
        found = [v.decode("latin-1") for k, v in carrier if k == name]
        return found or None

    def keys(self, carrier: list[tuple[bytes, bytes]]) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier]


_HEADERS: Final = _AsgiHeaders()


def incoming(scope: Scope) -> Context:
    """The caller's trace, if its `traceparent` is a valid one (the sampler decides
    with it: parent-based by default)."""
    return W3C.extract(scope["headers"], getter=_HEADERS)


def outgoing() -> dict[str, str]:
    """The `traceparent` header that carries the current span to a vendor (no
    `tracestate`: what other services put there is not the vendor's)."""
    carrier: dict[str, str] = {}
    W3C.inject(carrier)
    return {"traceparent": carrier["traceparent"]} if "traceparent" in carrier else {}


def failed(span: Span, exc: BaseException) -> None:
    """An exception on `span`: its type and our error code, never its message (a
    library's message may quote a URL, a header or a body)."""
    code = exc.code if isinstance(exc, WidgetProxyError) else type(exc).__qualname__
    span.set_attribute("error.type", code)
    span.set_status(Status(StatusCode.ERROR, type(exc).__qualname__))


@contextmanager
def step(tracer: Tracer, name: str, **attributes: str | bool | int) -> Iterator[Span]:
    """A child span of the current one around a step; its error recorded by `failed`.

    Inside a request that is not sampled (or outside any span), none: its spans would
    be dropped anyway, and the SDK's span costs more than most steps it would time
    (docs/tracing.md: sampling is how a busy proxy pays less)."""
    current = trace.get_current_span()
    if not current.get_span_context().trace_flags.sampled:  # (an ended parent's still is)
        yield current
        return
    with tracer.start_as_current_span(
        name, attributes=attributes, record_exception=False, set_status_on_exception=False
    ) as span:
        try:
            yield span
        except BaseException as exc:
            failed(span, exc)
            raise


class ServerSpans:
    """The request's server span (outermost: the request line, written inside it,
    carries its trace id). HTTP semantic conventions: the method, the route's
    template (not the path a client chose), the status; an answer of 500 or more, or
    none at all, is an error."""

    def __init__(self, app: ASGIApp, *, tracer: Tracer) -> None:
        self.app = app
        self._tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in METHODS else "_OTHER"
        attributes = {
            "http.request.method": method,
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        with self._tracer.start_as_current_span(
            method,
            context=incoming(scope),
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            status = 0

            async def sending(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    span.set_attribute("http.response.status_code", status)
                await send(message)

            try:
                await self.app(scope, receive, sending)
            except BaseException as exc:
                failed(span, exc)
                raise
            finally:
                route = getattr(scope.get("route"), "path", None)
                if isinstance(route, str):
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                if status >= 500:
                    span.set_attribute("error.type", str(status))
                    span.set_status(Status(StatusCode.ERROR))


class TraceIds(logging.Filter):
    """` trace_id=…` at the end of every record's message written inside a span (the
    request line, an error line), after the redaction filter rendered it."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            trace_id = trace.format_trace_id(context.trace_id)
            record.msg = f"{record.getMessage()} trace_id={trace_id}"
            record.args = None
            record.trace_id = trace_id
        return True
