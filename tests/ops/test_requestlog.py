"""Each request's id and its one log line."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from starlette.types import Message, Receive, Scope, Send

from tests.support import EMAIL, Proxy
from widget_proxy.ops.metrics import Metrics
from widget_proxy.ops.requestlog import RequestLog
from widget_proxy.security.forwarded import TrustedProxies


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

    lines = [r for r in caplog.records if r.name == "widget_proxy.request"]
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


def test_refused_requests_use_up_the_ip_limit(make_proxy: Callable[..., Proxy]) -> None:
    proxy = make_proxy(RATE_LIMIT_IP_PER_MINUTE="5")
    refused = [
        proxy.client.get("/nothing-here"),  # 404: the router found no route
        proxy.client.get("/nothing-here"),
        proxy.client.post("/widget"),  # 405
        proxy.get("/widget", EMAIL, headers={"origin": "https://elsewhere.example"}),  # 403
        proxy.get("/widget?color=purple", EMAIL),  # 400, before admission
    ]

    assert [r.status_code for r in refused] == [404, 404, 405, 403, 400]
    # The address's room is used up: its next page view is refused too.
    assert proxy.get("/widget", EMAIL).status_code == 429


def test_every_field_a_client_chose_is_cut_in_the_line(
    proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="widget_proxy"):
        assert proxy.client.get("/" + "p" * 8_000).status_code == 404

    (record,) = [r for r in caplog.records if r.name == "widget_proxy.request"]
    assert len(record.__dict__["path"]) < 1_100
    assert len(record.getMessage()) < 1_400


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_line_is_written_before_the_client_has_its_answer(
    caplog: pytest.LogCaptureFixture, method: str
) -> None:
    # A HEAD answer is whole once its headers arrive: its line can't wait for the body
    # message, which a client never waits for.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    written_when: dict[str, int] = {}

    async def send(message: Message) -> None:
        lines = [r for r in caplog.records if r.getMessage().startswith(f"{method} /widget 200")]
        written_when[message["type"]] = len(lines)

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": method, "path": "/widget", "headers": [],
             "client": ("127.0.0.1", 5000)}  # fmt: skip
    log = RequestLog(app, Metrics(), TrustedProxies(()))
    with caplog.at_level(logging.INFO, logger="widget_proxy"):
        asyncio.run(log(scope, receive, send))

    last = "http.response.start" if method == "HEAD" else "http.response.body"
    assert written_when[last] == 1
    assert written_when["http.response.body"] == 1  # one line in all
