"""What an operator relies on: health, readiness, metrics, request ids, log lines."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx2
import jwt
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support import (
    EMAIL,
    FaultyUpstream,
    LeakScanner,
    Proxy,
    Respond,
    scanning_client,
    token_in,
    unavailable,
    wait_until,
)
from tests.support.processes import answers, free_port, serve
from tests.support.redis import private_redis
from widget_proxy.ops.logs import JsonFormatter, RedactionFilter, log_config
from widget_proxy.providers.returningai import ReturningAIStandIn
from widget_proxy.servers import BackgroundServer


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text → {(sample name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def at_once(client: httpx2.Client, path: str, cookies: list[dict[str, str]]) -> list[int]:
    """GET `path` once per cookie, all at the same time; the statuses."""
    with ThreadPoolExecutor(len(cookies)) as pool:
        replies = pool.map(lambda headers: client.get(path, headers=headers), cookies)
        return [response.status_code for response in replies]


def value(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_healthz_and_readyz(proxy: Proxy) -> None:
    assert proxy.client.get("/healthz").status_code == 200
    ready = proxy.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "degraded": {}, "cache": {"topology": "memory"}}


def degraded_gauge(proxy: Proxy) -> float:
    return value(samples(proxy.client.get("/metrics").text), "widget_proxy_degraded", part="cache")


@pytest.mark.slow
def test_readyz_says_when_redis_stops_and_stays_ready(make_proxy: Callable[..., Proxy]) -> None:
    with private_redis() as redis:
        proxy = make_proxy(CACHE_URL=redis.url)
        assert proxy.client.get("/readyz").json() == {
            "ready": True,
            "degraded": {},
            "cache": {"topology": "single"},
        }

        redis.kill()
        assert proxy.get("/widget", EMAIL).status_code == 200  # pages still flow
        down = proxy.client.get("/readyz")
        assert down.status_code == 200  # this process can serve: don't pull it
        assert "cache" in down.json()["degraded"]
        assert degraded_gauge(proxy) == 1.0

        redis.start()
        wait_until(lambda: proxy.client.get("/readyz").json()["degraded"] == {}, timeout=15)
        wait_until(lambda: proxy.get("/widget", EMAIL).is_success and degraded_gauge(proxy) == 0.0)


def test_readyz_reports_an_open_circuit_and_a_late_success_does_not_close_it(
    make_proxy: Callable[..., Proxy], faulty: FaultyUpstream
) -> None:
    proxy = make_proxy(
        WIDGET_BASE_URL=faulty.url,
        BREAKER_FAILURES="1",
        UPSTREAM_RETRIES="0",
        BREAKER_COOLDOWN="30",
    )
    # The signin fails while the page fetch, side by side with it, succeeds a moment
    # later: a call that began before the circuit opened must not close it.
    faulty.vendor.page_delay = 0.3
    faulty.faults.active["signin"] = Respond(502)
    assert proxy.get("/widget", EMAIL).status_code == 502
    wait_until(lambda: faulty.vendor.calls["page"] == 1)
    time.sleep(0.1)  # the page's answer has been taken in by now

    ready = proxy.client.get("/readyz")

    assert ready.status_code == 200
    assert any("circuit open" in why for why in ready.json()["degraded"].values())
    circuit = samples(proxy.client.get("/metrics").text)
    assert 2.0 in {v for (name, _), v in circuit.items() if name == "widget_proxy_circuit_state"}


@pytest.mark.slow
def test_one_users_failing_signin_does_not_open_the_circuit_for_everybody(
    make_proxy: Callable[..., Proxy], faulty: FaultyUpstream
) -> None:
    proxy = make_proxy(WIDGET_BASE_URL=faulty.url, BREAKER_FAILURES="5", UPSTREAM_RETRIES="2")
    assert proxy.get("/widget", "warm@example.com").status_code == 200
    faulty.faults.active["signin"] = Respond(502)
    for _ in range(5):  # one user, five requests, three attempts each
        assert proxy.get("/widget", "unlucky@example.com").status_code == 502
    faulty.faults.reset()

    assert proxy.get("/widget", "other@example.com").status_code == 200  # not 503
    assert proxy.client.get("/readyz").json()["degraded"] == {}


def test_metrics_after_a_few_requests(make_proxy: Callable[..., Proxy]) -> None:
    proxy = make_proxy(RATE_LIMIT_PER_MINUTE="3")
    for _ in range(4):
        proxy.get("/widget", EMAIL)  # 1 miss, 2 hits, then rate limited
    proxy.get("/widget?color=purple", EMAIL)  # refused before it is counted

    found = samples(proxy.client.get("/metrics").text)

    assert value(found, "widget_proxy_requests_total", route="/widget", status="200") == 3
    assert value(found, "widget_proxy_requests_total", route="/widget", status="429") == 1
    assert value(found, "widget_proxy_requests_total", route="/widget", status="400") == 1
    assert value(found, "widget_proxy_request_duration_seconds_count", route="/widget") == 5
    assert value(found, "widget_proxy_upstream_calls_total", kind="signin", outcome="ok") == 1
    assert value(found, "widget_proxy_upstream_calls_total", kind="page", outcome="ok") == 1
    assert value(found, "widget_proxy_upstream_duration_seconds_count", kind="signin") == 1
    assert value(found, "widget_proxy_cache_events_total", cache="token", outcome="hit") == 2
    assert value(found, "widget_proxy_cache_events_total", cache="token", outcome="miss") == 1
    assert value(found, "widget_proxy_cache_events_total", cache="page", outcome="miss") == 1
    assert value(found, "widget_proxy_rate_limited_total", limit="user") == 1
    assert value(found, "widget_proxy_circuit_state", origin=proxy.settings.vendor.base_url) == 0


def test_coalesced_waiters_are_counted(proxy: Proxy, vendor: ReturningAIStandIn) -> None:
    vendor.signin_delay = vendor.page_delay = 0.2

    statuses = at_once(proxy.client, "/widget", [proxy.cookie({"email": EMAIL})] * 20)
    found = samples(proxy.client.get("/metrics").text)

    assert value(found, "widget_proxy_coalesced_waiters_total", cache="token") >= 10
    assert vendor.calls["signin"] == 1
    assert statuses == [200] * 20


@pytest.mark.parametrize(
    ("env", "status"),
    [({"METRICS_ALLOW": "10.0.0.0/8"}, 403), ({"METRICS_ENABLED": "false"}, 404)],
)
def test_metrics_access(make_proxy: Callable[..., Proxy], env: dict[str, str], status: int) -> None:
    assert make_proxy(**env).client.get("/metrics").status_code == status


@pytest.mark.slow
def test_metrics_add_up_across_workers(
    tmp_path: Path, vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner
) -> None:
    with (
        serve(tmp_path, vendor, upstream, leak_scanner, "--workers", "2") as proxy,
        scanning_client(leak_scanner, base_url=proxy.url, timeout=30) as client,
    ):
        at_once(client, "/widget", [proxy.cookie(f"w{i}@x.io") for i in range(40)])
        scraped = [samples(client.get("/metrics").text) for _ in range(4)]

    for found in scraped:  # whichever worker answers, it counts both
        assert value(found, "widget_proxy_requests_total", route="/widget", status="200") == 40


@pytest.mark.parametrize(
    ("trusted", "sent", "echoed"),
    [("127.0.0.1", "edge-req-42", True), ("10.0.0.0/8", "edge-req-42", False),
     ("127.0.0.1", "bad id with spaces", False)],
)  # fmt: skip
def test_request_id(
    make_proxy: Callable[..., Proxy], trusted: str, sent: str, echoed: bool
) -> None:
    proxy = make_proxy(TRUSTED_PROXIES=trusted)

    ok = proxy.get("/widget", EMAIL, headers={"x-request-id": sent})
    error = proxy.get("/widget?color=x", EMAIL, headers={"x-request-id": sent})

    assert (ok.headers["x-request-id"] == sent) is echoed
    assert len(ok.headers["x-request-id"]) >= 8
    assert error.headers["x-request-id"] in error.text


def test_one_log_line_per_request(proxy: Proxy, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="widget_proxy"):
        first = proxy.get("/widget?color=dark", EMAIL)
        proxy.get("/widget?color=dark", EMAIL)

    lines = [r for r in caplog.records if r.name == "widget_proxy"]
    assert len(lines) == 2
    record = lines[0]
    assert record.__dict__["method"] == "GET"
    assert record.__dict__["path"] == "/widget"  # without the query
    assert record.__dict__["status"] == 200
    assert record.__dict__["duration_ms"] > 0
    assert record.__dict__["request_id"] == first.headers["x-request-id"]
    assert record.__dict__["client_ip"] == "127.0.0.1"
    assert [r.__dict__["cache"] for r in lines] == ["miss", "hit"]
    upstream = [r for r in caplog.records if r.name == "widget_proxy.upstream"]
    assert len(upstream) == 2  # one line per upstream call: signin and page
    assert all(r.levelno == logging.INFO for r in upstream)


@pytest.mark.slow
def test_serve_logs_json_lines(
    tmp_path: Path, vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner
) -> None:
    with (
        serve(tmp_path, vendor, upstream, leak_scanner) as proxy,
        scanning_client(leak_scanner, base_url=proxy.url, timeout=30) as client,
    ):
        client.get("/widget?color=dark", headers=proxy.cookie(EMAIL))

    lines = [json.loads(line) for line in proxy.log.read_text().splitlines() if line]
    request = next(line for line in lines if line.get("path") == "/widget")
    assert request["status"] == 200
    assert request["level"] == "info"
    assert {"time", "message", "request_id", "duration_ms", "client_ip", "cache"} <= set(request)
    assert EMAIL not in proxy.log.read_text()


SECRET_KEY = "live-api-key-0123456789"
JWT_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2lnbmF0dXJlLWJ5dGVz"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_redaction_on_every_handler(fmt: str, tmp_path: Path) -> None:
    config = log_config(fmt=fmt, secrets=[SECRET_KEY, "session-secret-abc"])
    out = tmp_path / "log.txt"
    handler = logging.FileHandler(out)
    handler.addFilter(config["filters"]["redact"]["()"](**{
        k: v for k, v in config["filters"]["redact"].items() if k != "()"
    }))  # fmt: skip
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(message)s"))
    logger = logging.getLogger("widget_proxy.redaction_test")
    logger.addHandler(handler)
    try:
        logger.warning("key %s secret %s token %s for %s", SECRET_KEY, "session-secret-abc",
                       JWT_TOKEN, "ann.smith@example.com")  # fmt: skip
        try:
            raise RuntimeError(f"upstream refused {SECRET_KEY} with {JWT_TOKEN}")
        except RuntimeError:
            logger.exception("with a trace")
    finally:
        logger.removeHandler(handler)
        handler.close()

    text = out.read_text()
    for leaked in (SECRET_KEY, "session-secret-abc", JWT_TOKEN, "ann.smith@example.com"):
        assert leaked not in text
    assert "a***@example.com" in text
    assert "[redacted]" in text
    assert "[jwt]" in text
    assert "RuntimeError" in text  # the trace is kept, only cleaned


def test_log_emails_keeps_them_whole() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "for %s", ("ann@example.com",), None)

    RedactionFilter(log_emails=True).filter(record)

    assert record.getMessage() == "for ann@example.com"


NGINX = Path("/usr/sbin/nginx")


def readme_nginx_blocks() -> list[str]:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"```nginx\n(.*?)```", readme, re.DOTALL)
    assert len(blocks) == 2, "the README has a forwarding and an oauth2-proxy nginx sample"
    return blocks


@contextmanager
def nginx(tmp_path: Path, block: str, backend: str) -> Iterator[str]:
    """A real nginx serving `block` (a README sample) with the proxy at `backend`."""
    if not NGINX.exists():
        unavailable("nginx is not installed (apt-get install nginx)")
    port = free_port()
    (tmp_path / "nginx.conf").write_text(
        f"daemon off; user root; pid {tmp_path}/nginx.pid;"
        f" error_log {tmp_path}/nginx-error.log;\n"
        "events {}\n"
        "http {\n  access_log off;\n"
        + "".join(f"  {kind}_temp_path {tmp_path}/{kind};\n"
                  for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        + f"  server {{\n    listen 127.0.0.1:{port};\n"
        + block.replace("127.0.0.1:8000", backend)
        + "  }\n}\n"
    )  # fmt: skip
    process = subprocess.Popen(
        [str(NGINX), "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{base}/rewards/healthz"), timeout=15)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.slow
def test_behind_nginx_with_the_readme_config(
    tmp_path: Path, vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner
) -> None:
    with serve(
        tmp_path, vendor, upstream, leak_scanner, "--root-path", "/rewards",
        TRUSTED_PROXIES="127.0.0.1/32", LOGIN_URL="/login",
    ) as proxy:  # fmt: skip
        backend = proxy.url.removeprefix("http://")
        with (
            nginx(tmp_path, readme_nginx_blocks()[0], backend) as base,
            scanning_client(leak_scanner, base_url=base, timeout=30) as client,
        ):
            page = client.get(
                "/rewards/widget",
                headers={**proxy.cookie(EMAIL), "x-forwarded-for": "203.0.113.7"},
            )
            anonymous = client.get("/rewards/widget")
            token = client.post(
                "/rewards/widget/token", headers={**proxy.cookie(EMAIL), "origin": base}
            )
            metrics = client.get("/rewards/metrics")
            readyz = client.get("/rewards/readyz")

    assert page.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", page.headers["x-request-id"])  # nginx's $request_id
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=%2Frewards%2Fwidget"
    assert token.status_code == 200  # same-origin, as nginx forwarded host and scheme
    assert metrics.status_code == readyz.status_code == 404  # operators' endpoints stay in
    lines = [json.loads(line) for line in proxy.log.read_text().splitlines() if line]
    seen = next(line for line in lines if line.get("request_id") == page.headers["x-request-id"])
    assert seen["client_ip"] == "203.0.113.7"  # the client, not nginx, nor a spoof


@pytest.mark.slow
def test_the_forwarding_sample_never_passes_on_a_clients_identity_header(
    tmp_path: Path, vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner
) -> None:
    # Even a proxy wrongly told that this nginx asserts identity gets no identity from it.
    with serve(
        tmp_path, vendor, upstream, leak_scanner, "--root-path", "/rewards",
        TRUSTED_PROXIES="127.0.0.1/32", IDENTITY_SOURCE="header", IDENTITY_PROXIES="127.0.0.1",
    ) as proxy:  # fmt: skip
        backend = proxy.url.removeprefix("http://")
        with (
            nginx(tmp_path, readme_nginx_blocks()[0], backend) as base,
            scanning_client(leak_scanner, base_url=base, timeout=30) as client,
        ):
            claimed = client.get("/rewards/widget", headers={"x-auth-request-email": EMAIL})

    assert claimed.status_code == 401  # the header was cleared on the way
    assert vendor.calls == {}


def oauth2_proxy_stand_in(sessions: dict[str, str]) -> Starlette:
    """oauth2-proxy's `/oauth2/auth` as nginx's auth_request sees it (--set-xauthrequest):
    202 with X-Auth-Request-Email for a valid `_oauth2_proxy` cookie, else 401."""

    async def auth(request: Request) -> Response:
        email = sessions.get(request.cookies.get("_oauth2_proxy", ""))
        if email is None:
            return Response(status_code=401)
        return Response(status_code=202, headers={"x-auth-request-email": email})

    return Starlette(routes=[Route("/oauth2/auth", auth, methods=["GET"])])


@pytest.mark.slow
def test_the_oauth2_proxy_sample_sets_the_identity_itself(
    tmp_path: Path, vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner
) -> None:
    sessions = {"ann-session": EMAIL}
    with (
        BackgroundServer(oauth2_proxy_stand_in(sessions)) as auth_server,
        serve(
            tmp_path, vendor, upstream, leak_scanner, "--root-path", "/rewards",
            TRUSTED_PROXIES="127.0.0.1/32", IDENTITY_SOURCE="header",
            IDENTITY_PROXIES="127.0.0.1/32",
        ) as proxy,
    ):  # fmt: skip
        block = readme_nginx_blocks()[1].replace(
            "127.0.0.1:4180", auth_server.url.removeprefix("http://")
        )
        with (
            nginx(tmp_path, block, proxy.url.removeprefix("http://")) as base,
            scanning_client(leak_scanner, base_url=base, timeout=30) as client,
        ):
            signed_in = client.get(
                "/rewards/widget",
                headers={
                    "cookie": "_oauth2_proxy=ann-session",
                    "x-auth-request-email": "victim@example.com",  # the client's own claim
                },
            )
            spoofed = client.get(
                "/rewards/widget", headers={"x-auth-request-email": "victim@example.com"}
            )

    assert signed_in.status_code == 200
    claims = jwt.decode(token_in(signed_in.text), vendor.signing_key, algorithms=["HS256"])
    assert claims["email"] == EMAIL  # oauth2-proxy's user, not the header the client sent
    assert spoofed.status_code == 401  # no oauth2-proxy session: nginx refuses, nothing sent
    assert vendor.calls["signin"] == 1
