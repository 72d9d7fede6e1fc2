"""What `serve`'s own flags rule out (`serve_problems`), as the command says it; the app
it runs in each process, its request lines written past `logging`."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import os
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.support import LeakScanner, fresh_secret, scanning_client
from tests.support.processes import serve, serve_refused
from widget_proxy.ops.fastlines import FastLines
from widget_proxy.ops.logs import LOGGERS, log_config
from widget_proxy.ops.requestlog import RequestLog
from widget_proxy.providers.returningai import ReturningAIStandIn
from widget_proxy.serve import serve_app, uvicorn_trust


def test_serve_refuses_proxy_headers_with_header_identity(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "WIDGET_BASE_URL": "https://widgets.example.com",
        "WIDGET_API_KEY": fresh_secret(),
        "WIDGET_COMMUNITY_ID": "c",
        "WIDGET_ID": "w",
        "SESSION_SECRET": fresh_secret(),
        "IDENTITY_SOURCE": "header",
        "IDENTITY_PROXIES": "127.0.0.1",
    }
    result = serve_refused(tmp_path, env, "--proxy-headers")

    assert result.returncode == 2
    assert "--proxy-headers hides the direct peer that IDENTITY_SOURCE=header" in result.stderr


@pytest.mark.parametrize(
    ("raw", "trusted"),
    [
        ("127.0.0.1", ["127.0.0.1/32", "::ffff:127.0.0.1/128"]),
        ("10.0.0.0/8 ::1", ["10.0.0.0/8", "::1/128", "::ffff:10.0.0.0/104"]),
        ("::ffff:192.168.0.0/112", ["192.168.0.0/16", "::ffff:192.168.0.0/112"]),
    ],
)
def test_uvicorns_trusted_peers_include_their_ipv4_mapped_form(
    raw: str, trusted: list[str]
) -> None:
    assert uvicorn_trust(raw) == trusted


@pytest.mark.slow
def test_forwarded_allow_ips_is_a_trust_list_like_any_other(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", "")}
    result = serve_refused(
        tmp_path, env, "--proxy-headers", "--forwarded-allow-ips", "::ffff:0:0/96"
    )

    assert result.returncode == 2
    assert "--forwarded-allow-ips: 0.0.0.0/0 trusts at least a /1's worth" in result.stderr


@pytest.mark.slow
def test_serve_writes_every_request_line_and_each_upstream_call_once(
    tmp_path: Path, vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner
) -> None:
    """As served (JSON, INFO): a line per request through the batch writer, none lost
    when SIGTERM ends the process right after the last answer; one line per upstream
    call, with its fields; the HTTP library's own line silenced."""
    views = 30
    with (
        serve(tmp_path, vendor, upstream, leak_scanner) as proxy,
        scanning_client(leak_scanner, base_url=proxy.url) as client,
    ):
        for _ in range(views):
            assert client.get("/widget", headers=proxy.cookie("ann@example.com")).status_code == 200
        metrics = client.get("/metrics").text
    # (`serve` has exited: SIGTERM, its lifespan's end flushed the writer.)

    text = proxy.log.read_text()
    records = [json.loads(line) for line in text.splitlines()]
    requests = [r for r in records if r["logger"] == "widget_proxy.request" and r["path"] != "/"]
    assert [r["path"] for r in requests] == ["/widget"] * views + ["/metrics"]  # (not "/":
    assert [r["cache"] for r in requests[:2]] == ["miss", "hit"]  # the readiness polls)
    calls = [r for r in records if r["logger"] == "widget_proxy.upstream"]
    assert sorted((c["operation"], c["method"], c["status"], c["attempt"]) for c in calls) == [
        ("page", "GET", 200, 1),
        ("signin", "POST", 200, 1),
    ]
    assert all(c["vendor"] == "returningai" and "?" not in c["url_path"] for c in calls)
    assert "HTTP Request" not in text
    assert "widget_proxy_log_lines_dropped_total 0.0" in metrics


@pytest.fixture
def served_logging() -> Iterator[io.StringIO]:
    """`serve`'s logging configuration (text), writing to a string; then as it was."""
    names = ("", *LOGGERS)
    saved = [(logging.getLogger(n or None), logging.getLogger(n or None).__dict__.copy())
             for n in names]  # fmt: skip
    stream = io.StringIO()
    config = log_config(level="INFO")
    config["handlers"]["stderr"]["stream"] = stream
    logging.config.dictConfig(config)
    yield stream
    for logger, state in saved:
        logger.__dict__.clear()
        logger.__dict__.update(state)


@pytest.mark.anyio
async def test_serve_app_writes_request_lines_past_logging_and_flushes_them(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    vendor: ReturningAIStandIn,
    upstream: str,
    served_logging: io.StringIO,
) -> None:
    secret = fresh_secret()
    env = {**vendor.proxy_env(upstream), "SESSION_SECRET": secret, "LOGIN_URL": ""}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    logging.getLogger("widget_proxy").handlers[1:] = []  # pytest's own, added since
    app = serve_app(proxy_headers=False)
    front = app.current.build_middleware_stack()

    assert isinstance(front, RequestLog)
    assert isinstance(front.lines, FastLines)  # not a logging record
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://proxy"
    ) as client:
        assert (await client.get("/healthz")).status_code == 200
    await app.reload()  # a SIGHUP's reload writes what waits, whatever the interval

    lines = [line for line in served_logging.getvalue().splitlines() if "request:" in line]
    assert len(lines) == 1
    assert " INFO    widget_proxy.request: GET /healthz 200 " in lines[0]
