"""The vendor calls' spans: one per call (its attempts, the breaker's state), and a
client span per HTTP request under it, whose `traceparent` the request carries to the
vendor. Built by `create_app` only when tracing is on (`ops.tracing`); what a span may
hold: `ops.spans` (here: the operation, the method, the vendor's host and port, the
status; never the URL's path or query, nor a header or body).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer

from ..errors import UpstreamError
from ..ops.spans import failed, outgoing, step
from .client import Call, HttpClient, Reply, Tried


class TracedHttpClient(HttpClient):
    def __init__(self, *, tracer: Tracer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._tracer = tracer

    async def call(self, kind: str, method: str, url: str, **options: Any) -> Reply:
        breaker = self.breaker(url)
        attributes = {"widget_proxy.upstream.operation": kind, **_server(url)}
        with step(self._tracer, f"upstream {kind}", **attributes) as span:
            span.set_attribute("widget_proxy.breaker.state", breaker.state)
            try:
                return await super().call(kind, method, url, **options)
            finally:
                span.set_attribute("widget_proxy.breaker.state_after", breaker.state)

    def _observe(self, call: Call, started: float, tried: Tried, exc: UpstreamError | None) -> None:
        span = trace.get_current_span()  # the call's (`call` above)
        span.set_attribute("widget_proxy.upstream.attempts", tried.attempts)
        super()._observe(call, started, tried, exc)

    async def _once(self, call: Call, tried: Tried) -> Reply:
        if not trace.get_current_span().get_span_context().trace_flags.sampled:
            # Not sampled: no span of its own, the vendor still gets the request's trace.
            return await super()._once(replace(call, headers={**call.headers, **outgoing()}), tried)
        method = call.method
        with self._tracer.start_as_current_span(
            method,
            kind=SpanKind.CLIENT,
            attributes={"http.request.method": method, **_server(call.url)},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            traced = replace(call, headers={**call.headers, **outgoing()})
            try:
                return await super()._once(traced, tried)
            except BaseException as exc:
                failed(span, exc)
                raise
            finally:
                if tried.status is not None:
                    span.set_attribute("http.response.status_code", tried.status)


def _server(url: str) -> dict[str, str | int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return {"server.address": parts.hostname or "", "server.port": port}
