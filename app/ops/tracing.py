"""Traces over OTLP/HTTP, when the standard `OTEL_*` variables ask for them.

Read once per process, at start-up (`widget-proxy serve`: each worker, before its
first app): `start` builds the process's one `TracerProvider` (a batch processor and
the OTLP/HTTP exporter, both configured by the SDK from `OTEL_BSP_*` and
`OTEL_EXPORTER_OTLP_*`) and gives every app the process builds its tracer, so a
SIGHUP reload traces on with the same provider; `flush` exports what is queued
(at a reload and at the exit).

Tracing is on when `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
or `OTEL_TRACES_EXPORTER=otlp` is set, unless `OTEL_SDK_DISABLED=true` or
`OTEL_TRACES_EXPORTER=none` says otherwise; off, nothing of OpenTelemetry is even
imported, and the app is built exactly as without tracing (docs/tracing.md).

What it can't do is refused at start with a clear message (`problems`), as settings
are: another protocol than http/protobuf (gRPC is not shipped), another exporter, or
tracing asked for without the `otel` extra installed. An operator who set an endpoint
expects traces: a proxy that started without them would hide it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from ..__version__ import __version__
from .logs import LOGGERS

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

ENDPOINTS: Final = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
PROTOCOLS: Final = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
SERVICE: Final = "widget-proxy"  # the service's name unless OTEL_SERVICE_NAME gives one
MISSING: Final = (
    "tracing is asked for ({names}), but the otel extra is not installed:"
    " pip install 'widget-proxy[otel]', or unset {names}"
)

log = logging.getLogger("widget_proxy")


def _value(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name, "").strip()


def asking(environ: Mapping[str, str]) -> list[str]:
    """The variables that turn tracing on; none when it stays off."""
    if _value(environ, "OTEL_SDK_DISABLED").lower() == "true":
        return []
    exporter = _value(environ, "OTEL_TRACES_EXPORTER").lower()
    if exporter == "none":
        return []
    named = [name for name in ENDPOINTS if _value(environ, name)]
    return [*named, "OTEL_TRACES_EXPORTER"] if exporter else named


def problems(environ: Mapping[str, str]) -> list[str]:
    """Why the tracing these variables ask for can't start: all of it, said at once."""
    names = asking(environ)
    if not names:
        return []
    found = []
    exporter = _value(environ, "OTEL_TRACES_EXPORTER").lower()
    if exporter not in ("", "otlp"):
        found.append(f"OTEL_TRACES_EXPORTER={exporter} is not shipped: otlp or none")
    for name in PROTOCOLS:
        protocol = _value(environ, name)
        if protocol:  # the signal's own variable wins over the general one
            if protocol != "http/protobuf":
                found.append(
                    f"{name}={protocol} is not shipped: only http/protobuf (OTLP over"
                    " HTTP, port 4318 by default)"
                )
            break
    if not installed():
        found.append(MISSING.format(names=", ".join(names)))
    return found


def installed() -> bool:
    """Whether the `otel` extra is (the SDK and the OTLP/HTTP exporter import)."""
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        return False
    return True


class Tracing:
    """This process's provider and the tracer every app of the process is given."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("widget_proxy", __version__)

    def mark_log_lines(self) -> None:
        """Every line `log_config`'s handlers write inside a span ends with its trace id
        (`spans.TraceIds`): the request line and the error lines. Request lines then go
        through `logging` (FastLines takes only a handler it knows the filters of)."""
        from .spans import TraceIds

        handlers = {id(h): h for name in ("", *LOGGERS) for h in logging.getLogger(name).handlers}
        for handler in handlers.values():
            if not any(isinstance(f, TraceIds) for f in handler.filters):
                handler.addFilter(TraceIds())

    def flush(self) -> None:
        """Export what is queued (at a reload, and at the exit; blocks up to the export's
        timeout: `Reloading` calls it in a thread). The provider stays: the SDK shuts it
        down as the process exits."""
        self.provider.force_flush()


_process: Tracing | None = None  # one provider per process, whatever reloads


def start(environ: Mapping[str, str]) -> Tracing | None:
    """The process's tracing, made on its first call; None when it is off.

    Raises `RuntimeError` with `problems`' messages if it can't start (`serve` checks
    them first, once, and refuses to start).
    """
    global _process
    if _process is not None:
        return _process
    if not asking(environ):
        return None
    if found := problems(environ):
        raise RuntimeError("; ".join(found))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # The SDK reads OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_* and OTEL_EXPORTER_OTLP_* itself.
    resource = Resource.create(
        {
            "service.name": _value(environ, "OTEL_SERVICE_NAME") or SERVICE,
            "service.version": __version__,
            # This process (each worker has its own): a reload keeps it, a restart doesn't.
            "service.instance.id": str(uuid.uuid4()),
        }
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _process = Tracing(provider)
    log.info("tracing on: spans go over OTLP/HTTP (docs/tracing.md)")
    return _process
