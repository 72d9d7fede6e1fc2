"""The widget page's short path (`app/fastpath.py`): taken by every GET of the page, and
answering as the router's path does."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import Receive, Scope

from tests.support import EMAIL, LeakScanner, Proxy, scanning_client
from widget_proxy import create_app
from widget_proxy.fastpath import ProxyApp
from widget_proxy.responses import Answer
from widget_proxy.routes import WidgetPage
from widget_proxy.servers import BackgroundServer
from widget_proxy.settings import Settings


# GET: the short path (the endpoint's `answer`, no layer awaiting the next); HEAD: the
# router, through the request log's `send`.
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_an_unexpected_error_is_the_crash_page_either_way(
    make_settings: Callable[..., Settings],
    leak_scanner: LeakScanner,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
) -> None:
    async def broken(self: WidgetPage, scope: Scope, receive: Receive) -> Answer:
        raise RuntimeError("the endpoint broke")

    monkeypatch.setattr(WidgetPage, "answer", broken)
    settings = make_settings()
    app = create_app(settings)
    with (
        BackgroundServer(app, timeout_graceful_shutdown=1) as server,
        scanning_client(leak_scanner, base_url=server.url) as client,
        caplog.at_level(logging.INFO, "widget_proxy"),
    ):
        cookie = Proxy(settings, server.url, leak_scanner).cookie({"email": EMAIL})
        answer = client.request(method, "/widget", headers={**cookie, "accept": "application/json"})

    assert answer.status_code == 500
    request_id = answer.headers["x-request-id"]
    if method == "GET":
        assert answer.json()["error"] == "internal_error"
        assert answer.json()["request_id"] == request_id
    # (Starlette's router path re-raises for uvicorn to log too; the proxy's own line is one.)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "widget_proxy"]
    assert [r.getMessage() for r in errors] == [f"unexpected error (request_id={request_id})"]
    lines = [r for r in caplog.records if r.getMessage().startswith(f"{method} /widget 500")]
    assert len(lines) == 1  # one request line, at WARNING for a 5xx
    assert lines[0].levelno == logging.WARNING
    assert lines[0].name == "widget_proxy.request"


@pytest.mark.parametrize("root_path", ["", "/rewards"])  # served alone, mounted in an app
def test_a_warm_page_view_takes_the_short_path(
    make_settings: Callable[..., Settings], leak_scanner: LeakScanner, root_path: str
) -> None:
    settings = make_settings()
    app = create_app(settings)
    assert isinstance(app, ProxyApp)
    served: Starlette = app
    if root_path:

        @asynccontextmanager
        async def lifespan(merchant: Starlette) -> AsyncIterator[None]:
            async with app.router.lifespan_context(app):
                yield

        served = Starlette(routes=[Mount(root_path, app)], lifespan=lifespan)
    with (
        BackgroundServer(served, timeout_graceful_shutdown=1) as server,
        scanning_client(leak_scanner, base_url=server.url) as client,
    ):
        cookie = Proxy(settings, server.url, leak_scanner).cookie({"email": EMAIL})
        views = [client.get(f"{root_path}/widget", headers=cookie) for _ in range(3)]
        head = client.head(f"{root_path}/widget", headers=cookie)  # the router's path
        token = client.post(f"{root_path}/widget/token", headers=cookie)

    assert [v.status_code for v in views] == [200, 200, 200]
    assert (head.status_code, token.status_code) == (200, 200)
    (short,) = app.shortcuts
    assert short.route.path == "/widget"
    assert short.taken == 3  # the page views, the first (cold) one too; nothing else


def test_the_short_path_counts_under_the_route(make_proxy: Callable[..., Proxy]) -> None:
    proxy = make_proxy()
    assert proxy.get("/widget", EMAIL).status_code == 200
    assert proxy.get("/widget?color=dark", EMAIL).status_code == 200

    metrics = proxy.client.get("/metrics").text

    assert 'widget_proxy_requests_total{route="/widget",status="200"} 2.0' in metrics


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"origin": "https://elsewhere.example"}, 403),  # the origin guard
        ({"x-padding": "p" * 40_000}, 431),  # the header limit
        ({}, 200),
    ],
    ids=["origin", "header-limit", "page"],
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_each_check_answers_alike_on_either_path(
    make_proxy: Callable[..., Proxy],
    caplog: pytest.LogCaptureFixture,
    method: str,
    headers: dict[str, str],
    status: int,
) -> None:
    proxy = make_proxy()
    with caplog.at_level(logging.INFO, "widget_proxy"):
        answer = proxy.client.request(
            method, "/widget", headers={**proxy.cookie({"email": EMAIL}), **headers}
        )

    assert answer.status_code == status
    request_id = answer.headers["x-request-id"]
    assert len(answer.headers.get_list("x-request-id")) == 1
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(method)]
    assert len(lines) == 1
    assert lines[0].startswith(f"{method} /widget {status} ")
    assert f"request_id={request_id}" in lines[0]


def test_a_refusal_before_the_route_counts_alike_on_either_path(
    make_proxy: Callable[..., Proxy],
) -> None:
    proxy = make_proxy()
    hostile = {**proxy.cookie({"email": EMAIL}), "origin": "https://elsewhere.example"}
    for method in ("GET", "HEAD"):  # the short path, the router's
        assert proxy.client.request(method, "/widget", headers=hostile).status_code == 403
        padded = {**proxy.cookie({"email": EMAIL}), "x-padding": "p" * 40_000}
        assert proxy.client.request(method, "/widget", headers=padded).status_code == 431

    metrics = proxy.client.get("/metrics").text

    # The gates run before routing: no route had been chosen, on either path.
    assert 'widget_proxy_requests_total{route="unmatched",status="403"} 2.0' in metrics
    assert 'widget_proxy_requests_total{route="unmatched",status="431"} 2.0' in metrics
    assert 'route="/widget",status="403"' not in metrics
