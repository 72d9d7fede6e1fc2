"""A small OTLP/HTTP receiver on loopback (a raw ASGI app under uvicorn): the spans a
proxy exports, decoded from their protobuf (`ExportTraceServiceRequest`), and a tracer
exporting to it as `serve`'s does (a batch processor and the OTLP/HTTP exporter), and
a proxy traced with it."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Tracer
from starlette.types import Receive, Scope, Send

from tests.support import Proxy, wait_until
from widget_proxy.servers import BackgroundServer


@dataclass(frozen=True)
class Span:
    """One exported span, as the receiver decoded it (ids in hex; times in ns)."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root
    kind: int  # the protobuf's: 1 internal, 2 server, 3 client
    start: int
    end: int
    attributes: dict[str, Any]
    status: int  # 0 unset, 1 ok, 2 error
    events: list[str]
    resource: dict[str, Any] = field(repr=False)

    @property
    def ms(self) -> float:
        return (self.end - self.start) / 1e6


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return None if kind is None else getattr(value, kind)


class Receiver:
    """What was exported to it: every request's protobuf text (for the leak scanner)
    and its spans decoded."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.texts: list[str] = []
        self.requests = 0
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if dict(scope["headers"]).get(b"content-encoding") == b"gzip":
            body = gzip.decompress(body)
        ok = scope["method"] == "POST" and scope["path"] == "/v1/traces"
        if ok:
            self._take(ExportTraceServiceRequest.FromString(body))
        answer = ExportTraceServiceResponse().SerializeToString()
        headers = [(b"content-type", b"application/x-protobuf")]
        status = 200 if ok else 404
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    def _take(self, request: ExportTraceServiceRequest) -> None:
        spans = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    spans.append(
                        Span(
                            name=s.name,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_id=s.parent_span_id.hex(),
                            kind=s.kind,
                            start=s.start_time_unix_nano,
                            end=s.end_time_unix_nano,
                            attributes={a.key: _value(a.value) for a in s.attributes},
                            status=s.status.code,
                            events=[e.name for e in s.events],
                            resource=resource,
                        )
                    )
        with self._lock:
            self.requests += 1
            self.texts.append(str(request))  # every string of it, as protobuf's text
            self.spans.extend(spans)

    def wait_for(self, predicate: Callable[[list[Span]], bool], timeout: float = 15) -> list[Span]:
        """The spans, once `predicate` holds for them."""
        wait_until(lambda: predicate(self.snapshot()), timeout=timeout)
        return self.snapshot()

    def snapshot(self) -> list[Span]:
        with self._lock:
            return list(self.spans)

    def trace(self, trace_id: str) -> list[Span]:
        return [s for s in self.snapshot() if s.trace_id == trace_id]


SERVER, CLIENT = 2, 3  # the protobuf's span kinds


def servers(spans: list[Span]) -> list[Span]:
    """The server spans (one per request), first to last."""
    return sorted((s for s in spans if s.kind == SERVER), key=lambda s: s.start)


def named(spans: list[Span], name: str) -> list[Span]:
    return sorted((s for s in spans if s.name == name), key=lambda s: s.start)


def children(spans: list[Span], parent: Span) -> list[Span]:
    return sorted((s for s in spans if s.parent_id == parent.span_id), key=lambda s: s.start)


def tree(spans: list[Span], root: Span, depth: int = 0) -> list[str]:
    """The trace as indented names, children in their start order: what a test shows."""
    lines = ["  " * depth + root.name]
    for child in children(spans, root):
        lines += tree(spans, child, depth + 1)
    return lines


@contextmanager
def receiver() -> Iterator[tuple[Receiver, str]]:
    """A receiver and its base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`)."""
    received = Receiver()
    with BackgroundServer(received, timeout_graceful_shutdown=1) as server:
        yield received, server.url


@contextmanager
def exporting(url: str) -> Iterator[tuple[Tracer, TracerProvider]]:
    """A tracer whose spans go to the receiver at `url`, as `serve`'s would."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": "widget-proxy-test"}), shutdown_on_exit=False
    )
    processor = BatchSpanProcessor(
        OTLPSpanExporter(endpoint=f"{url}/v1/traces"), schedule_delay_millis=50
    )
    provider.add_span_processor(processor)
    try:
        yield provider.get_tracer("widget_proxy"), provider
    finally:
        provider.shutdown()


@dataclass
class Traced:
    """A proxy whose spans go to `received`; `flush()` sends what is queued."""

    proxy: Proxy
    received: Receiver
    provider: TracerProvider

    def flush(self) -> None:
        assert self.provider.force_flush(), "the spans were not exported in time"

    def spans(self, requests: int) -> list[Span]:
        """Every span, once `requests` requests' server spans have come."""
        self.flush()
        return self.received.wait_for(lambda spans: len(servers(spans)) >= requests)


@contextmanager
def traced(make_proxy: Callable[..., Proxy], **overrides: Any) -> Iterator[Traced]:
    """`make_proxy(**overrides)`, its app traced, exporting to a receiver of its own."""
    with receiver() as (received, url), exporting(url) as (tracer, provider):
        yield Traced(make_proxy(tracer=tracer, **overrides), received, provider)
