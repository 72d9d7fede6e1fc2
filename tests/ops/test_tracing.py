"""When tracing is on, what it refuses, and `serve` exporting from every worker, through
a SIGHUP reload, until its exit; off, nothing of OpenTelemetry is built or imported."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest

from tests.support import EMAIL, VALID, LeakScanner, wait_until
from tests.support.otlp import SERVER, Span, receiver
from tests.support.processes import serve, serve_refused
from widget_proxy.ops import tracing
from widget_proxy.ops.requestlog import RequestLog
from widget_proxy.providers.returningai import ReturningAIStandIn

ENDPOINT = "http://127.0.0.1:4318"


@pytest.mark.parametrize(
    ("env", "asking"),
    [
        ({}, []),
        ({"OTEL_SERVICE_NAME": "shop", "OTEL_TRACES_SAMPLER": "always_on"}, []),  # tuning only
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, ["OTEL_EXPORTER_OTLP_ENDPOINT"]),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{ENDPOINT}/v1/traces"},
            ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"],
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ["OTEL_TRACES_EXPORTER"]),  # localhost:4318
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_SDK_DISABLED": "true"}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, []),
    ],
)
def test_what_turns_tracing_on(env: dict[str, str], asking: list[str]) -> None:
    assert tracing.asking(env) == asking
    if not asking:
        assert tracing.problems(env) == []


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "only http/protobuf"),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL": ""},
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc",
        ),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER=zipkin is not shipped"),
    ],
)
def test_what_it_cant_do_is_refused(env: dict[str, str], problem: str) -> None:
    found = tracing.problems({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, **env})
    assert len(found) == 1
    assert problem in found[0]
    with pytest.raises(RuntimeError, match="is not shipped"):
        tracing.start({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, **env})


def test_the_signals_own_protocol_wins_over_the_general_one() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT,
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",  # the metrics' (not ours)
    }
    assert tracing.problems(env) == []


def test_without_the_extra_tracing_asked_for_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    found = tracing.problems(env)
    assert found[-1] == (
        "tracing is asked for (OTEL_EXPORTER_OTLP_ENDPOINT), but the otel extra is not"
        " installed: pip install 'widget-proxy[otel]', or unset OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    assert len(found) == 2  # every problem, at once
    assert tracing.problems({}) == []  # off: nothing is asked of the extra


def test_off_the_app_is_built_and_serves_without_opentelemetry(tmp_path: Path) -> None:
    """No extra installed (its modules hidden), no OTEL_*: the app is the plain one, and
    a view through it imports nothing of OpenTelemetry."""
    script = """
import sys
sys.modules["opentelemetry"] = None  # as if the extra were not installed
import asyncio, httpx2
from widget_proxy import create_app
from widget_proxy.ops import tracing
from widget_proxy.settings import Settings
assert tracing.start({}) is None
app = create_app(Settings.from_env(dict(ENV)))
async def view():
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://t") as client:
        return (await client.get("/healthz")).status_code
assert asyncio.run(view()) == 200
print(type(app.middleware_stack).__name__, sorted(m for m in sys.modules if "opentelemetry" in m))
""".replace("ENV", repr(VALID))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [RequestLog.__name__, "['opentelemetry']"]  # (the None)


def test_serve_refuses_what_it_cant_trace(tmp_path: Path) -> None:
    env = {**VALID, "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    refused = serve_refused(tmp_path, env)
    assert refused.returncode == 2
    assert "widget-proxy: OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not shipped" in refused.stderr


def widget_views(spans: list[Span]) -> list[Span]:
    return [s for s in spans if s.kind == SERVER and s.name == "GET /widget"]


@pytest.mark.slow
def test_serve_exports_from_each_worker_through_a_reload_until_its_exit(
    tmp_path: Path,
    vendor: ReturningAIStandIn,
    upstream: str,
    leak_scanner: LeakScanner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two workers, one provider each (one `service.instance.id`), kept through a
    SIGHUP reload; spans queued for a minute are exported at the reload and at the
    exit (the flushes), and every request line names its trace."""
    with receiver() as (received, url):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "proxy-under-test")
        # Nothing sent before a flush: not by time, nor by a full batch (OTEL_BSP_*).
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")
        monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "8192")
        monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "8192")
        with serve(tmp_path, vendor, upstream, leak_scanner, "--workers", "2") as proxy:
            answered: set[str] = set()  # the processes (a request id's prefix is its own)

            def views(count: int) -> set[int]:
                def view(_: int) -> int:  # a connection each: the workers share them
                    url, cookie = f"{proxy.url}/widget", proxy.cookie(EMAIL)
                    response = httpx2.get(url, headers=cookie, timeout=30)
                    answered.add(response.headers["x-request-id"][:8])
                    return response.status_code

                with ThreadPoolExecutor(8) as pool:
                    return set(pool.map(view, range(count)))

            assert views(40) == {200}
            assert received.requests == 0  # queued, not yet sent
            env = tmp_path / ".env"
            env.write_text(env.read_text() + "WIDGET_COLOR=dark\n")
            proxy.process.send_signal(signal.SIGHUP)
            wait_until(lambda: proxy.log.read_text().count("settings reloaded") == 2, 30)
            # What was answered before the reload was exported at it, by each worker.
            received.wait_for(lambda spans: len(widget_views(spans)) == 40, timeout=30)
            assert views(40) == {200}
        log = proxy.log.read_text()
    servers = widget_views(received.spans)
    assert len(servers) == 80
    assert {s.resource["service.name"] for s in servers} == {"proxy-under-test"}
    # One provider per process, through the reload (not a new one per generation).
    assert len({s.resource["service.instance.id"] for s in servers}) == len(answered)
    assert len(answered) in (1, 2)  # (two unless the kernel gave one worker every connection)
    traced = {s.trace_id for s in servers}
    lines = [json.loads(line) for line in log.splitlines() if '"path": "/widget"' in line]
    assert len(lines) == 80
    assert {line["message"].rpartition(" trace_id=")[2] for line in lines} == traced
    for text in received.texts:
        leak_scanner.check("an exported span", text)
        assert EMAIL not in text
