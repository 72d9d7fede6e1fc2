"""What an operator relies on across processes and parts: metrics added up across
workers, serve's JSON lines, the nginx samples of docs/operations.md (run as written),
and one user's failing sign-in that must not open the circuit for everybody. (Health and readiness:
tests/test_health.py; request ids and log lines: tests/ops/test_requestlog.py.)"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
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
    docs,
    scanning_client,
    token_in,
    unavailable,
)
from tests.support.metrics import at_once, samples, value
from tests.support.nginx import nginx
from tests.support.processes import serve
from widget_proxy.providers.returningai import ReturningAIStandIn
from widget_proxy.servers import BackgroundServer


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


@pytest.mark.slow
@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_metrics_add_up_across_workers(
    tmp_path: Path,
    vendor: ReturningAIStandIn,
    upstream: str,
    leak_scanner: LeakScanner,
    server: str,
) -> None:
    with (
        serve(
            tmp_path, vendor, upstream, leak_scanner, "--workers", "2", "--server", server
        ) as proxy,
        scanning_client(leak_scanner, base_url=proxy.url, timeout=30) as client,
    ):
        at_once(client, "/widget", [proxy.cookie(f"w{i}@x.io") for i in range(40)])
        scraped = [samples(client.get("/metrics").text) for _ in range(4)]

    for found in scraped:  # whichever worker answers, it counts both
        assert value(found, "widget_proxy_requests_total", route="/widget", status="200") == 40


def dual_stack() -> bool:
    """Whether this machine has IPv6 on loopback, for a socket that takes IPv4 too."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            probe.bind(("::", 0))
    except OSError:
        return False
    return True


@pytest.mark.slow
def test_a_dual_stack_listener_matches_its_ipv4_peers(
    tmp_path: Path, vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner
) -> None:
    """`serve --host ::` (with workers: one socket, IPv4 and IPv6) sees nginx on 127.0.0.1
    as `::ffff:127.0.0.1`; every trust list still matches it as 127.0.0.1."""
    if not dual_stack():
        unavailable("no IPv6 on loopback for a dual-stack socket")
    clients = [f"203.0.113.{i}" for i in range(8)]  # 8 requests on 2 workers, limit 3
    with (
        serve(
            tmp_path, vendor, upstream, leak_scanner, "--host", "::", "--workers", "2",
            TRUSTED_PROXIES="127.0.0.1/32", IDENTITY_SOURCE="header",
            IDENTITY_PROXIES="127.0.0.1/32", RATE_LIMIT_IP_PER_MINUTE="3",
        ) as proxy,
        scanning_client(leak_scanner, base_url=proxy.url, timeout=30) as client,
    ):  # fmt: skip
        pages = [
            client.get(
                "/widget", headers={"x-forwarded-for": ip, "x-auth-request-email": f"u{i}@x.io"}
            )
            for i, ip in enumerate(clients)
        ]
        metrics = client.get("/metrics")  # METRICS_ALLOW's default, 127.0.0.0/8

    assert [page.status_code for page in pages] == [200] * len(clients)  # told apart, signed in
    claims = jwt.decode(token_in(pages[0].text), vendor.signing_key, algorithms=["HS256"])
    assert claims["email"] == "u0@x.io"  # the identity proxy's user
    assert metrics.status_code == 200
    lines = [json.loads(line) for line in proxy.log.read_text().splitlines() if line]
    assert sorted(line["client_ip"] for line in lines if line.get("path") == "/widget") == clients


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


@pytest.mark.slow
@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_behind_nginx_with_the_readme_config(
    tmp_path: Path,
    vendor: ReturningAIStandIn,
    upstream: str,
    leak_scanner: LeakScanner,
    server: str,
) -> None:
    with serve(
        tmp_path, vendor, upstream, leak_scanner, "--root-path", "/rewards", "--server", server,
        TRUSTED_PROXIES="127.0.0.1/32", LOGIN_URL="/login",
    ) as proxy:  # fmt: skip
        backend = proxy.url.removeprefix("http://")
        with (
            nginx(tmp_path, docs.block("nginx-serve"), backend) as base,
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
@pytest.mark.parametrize("underscores", ["", "underscores_in_headers on;\n"])
def test_the_forwarding_sample_never_passes_on_a_clients_identity_header(
    tmp_path: Path,
    vendor: ReturningAIStandIn,
    upstream: str,
    leak_scanner: LeakScanner,
    underscores: str,
) -> None:
    """Even a proxy wrongly told that this nginx asserts identity gets no identity from
    it: not the header (cleared), nor its underscore alias (oauth2-proxy's
    CVE-2025-64484), which nginx drops by default and the proxy ignores when it doesn't."""
    with serve(
        tmp_path, vendor, upstream, leak_scanner, "--root-path", "/rewards",
        TRUSTED_PROXIES="127.0.0.1/32", IDENTITY_SOURCE="header", IDENTITY_PROXIES="127.0.0.1",
    ) as proxy:  # fmt: skip
        backend = proxy.url.removeprefix("http://")
        with (
            nginx(tmp_path, underscores + docs.block("nginx-serve"), backend) as base,
            scanning_client(leak_scanner, base_url=base, timeout=30) as client,
        ):
            claimed = client.get("/rewards/widget", headers={"x-auth-request-email": EMAIL})
            aliased = client.get("/rewards/widget", headers={"X_Auth_Request_Email": EMAIL})

    assert claimed.status_code == 401  # the header was cleared on the way
    assert aliased.status_code == 401
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
        block = docs.block("nginx-oauth2-proxy").replace(
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
                    "X_Auth_Request_Email": "victim@example.com",  # and its alias
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
