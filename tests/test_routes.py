"""The widget page end to end: a real proxy in front of the real stand-in vendor."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from starlette.datastructures import Headers

from tests.support import EMAIL, Proxy, session_cookie, token_in
from widget_proxy.providers.returningai import ReturningAIStandIn


def test_serves_the_page_with_the_users_token(proxy: Proxy, vendor: ReturningAIStandIn) -> None:
    response = proxy.get("/widget", EMAIL)

    assert response.status_code == 200
    claims = jwt.decode(token_in(response.text), vendor.signing_key, algorithms=["HS256"])
    assert claims["email"] == EMAIL
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["vary"] == "Cookie"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["content-security-policy"] == "frame-ancestors 'self'"
    assert int(response.headers["content-length"]) == len(response.content)
    assert "content-encoding" not in response.headers
    assert f'<base href="{proxy.settings.vendor.base_url}/store/demo-store?color=light">' in (
        response.text
    )
    assert vendor.calls == {"signin": 1, "page": 1}


def test_a_warm_view_reads_its_headers_from_the_scope(
    proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cookie (and all else a warm view reads) comes from the raw header list: no
    Starlette `Headers` is built for it."""
    cookie = proxy.cookie({"email": EMAIL})  # one, as a browser holds it: the same session
    assert proxy.get("/widget", headers=cookie).status_code == 200  # cold: whatever it takes
    built: list[object] = []
    init = Headers.__init__

    def counting(self: Headers, *args: Any, **kwargs: Any) -> None:
        built.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(Headers, "__init__", counting)
    for _ in range(3):
        assert proxy.get("/widget", headers=cookie).status_code == 200

    assert built == []


@pytest.mark.parametrize(
    ("path", "widget_type", "color"),
    [
        ("/widget?color=dark", "store", "dark"),
        ("/widget/store/demo-store", "store", "light"),
        ("/widget/channel/demo-channel?color=dark", "channel", "dark"),
        ("/widget/milestone/demo-milestones", "milestone", "light"),
    ],
)
def test_serves_each_configured_widget_and_colour(
    proxy: Proxy, vendor: ReturningAIStandIn, path: str, widget_type: str, color: str
) -> None:
    response = proxy.get(path, EMAIL)

    assert response.status_code == 200
    assert f'widgetType: "{widget_type}"' in response.text
    assert f'<body class="{color}">' in response.text
    claims = jwt.decode(token_in(response.text), vendor.signing_key, algorithms=["HS256"])
    assert claims["email"] == EMAIL


def test_frame_ancestors_come_from_settings(make_proxy: Callable[..., Proxy]) -> None:
    proxy = make_proxy(FRAME_ANCESTORS="'self' https://shop.example.com")

    response = proxy.get("/widget", EMAIL)

    assert response.headers["content-security-policy"] == (
        "frame-ancestors 'self' https://shop.example.com"
    )


def test_email_from_a_dotted_session_path(
    make_proxy: Callable[..., Proxy], vendor: ReturningAIStandIn
) -> None:
    proxy = make_proxy(SESSION_EMAIL_KEY="user.email")

    response = proxy.client.get(
        "/widget", headers=proxy.cookie({"user": {"email": EMAIL}, "email": "decoy@example.com"})
    )

    assert response.status_code == 200
    claims = jwt.decode(token_in(response.text), vendor.signing_key, algorithms=["HS256"])
    assert claims["email"] == EMAIL  # the token is the dotted path's user's, not the decoy's


# Requests that are refused before anything is sent upstream.
REFUSED = [
    pytest.param("/widget?color=purple", EMAIL, 400, "bad_request", id="bad-colour"),
    pytest.param("/widget?color=%3Cb%3E", EMAIL, 400, "bad_request", id="markup-colour"),
    pytest.param("/widget?color=light&color=dark", EMAIL, 400, "bad_request", id="two-colours"),
    pytest.param("/widget/shop/demo-store", EMAIL, 400, "bad_request", id="unknown-type"),
    pytest.param("/widget/store/other-store", EMAIL, 404, "unknown_widget", id="unlisted-pair"),
    pytest.param("/widget/channel/demo-store", EMAIL, 404, "unknown_widget", id="mixed-pair"),
    pytest.param("/widget/store/..%2F..%2Fadmin", EMAIL, 404, "not_found", id="traversal"),
    pytest.param("/widget", None, 401, "not_authenticated", id="anonymous"),
    pytest.param("/widget", "ann@example.com\r\nx-evil: 1", 400, "invalid_email", id="crlf"),
    pytest.param("/widget", "ann example@example.com", 400, "invalid_email", id="space"),
    pytest.param("/widget", "ann@@example.com", 400, "invalid_email", id="two-ats"),
    pytest.param("/widget", "annexample.com", 400, "invalid_email", id="no-at"),
    pytest.param("/widget", "a" * 65 + "@example.com", 400, "invalid_email", id="long-local"),
    pytest.param("/widget", "a@" + "b" * 250 + ".com", 400, "invalid_email", id="too-long"),
    pytest.param("/widget", "änn@example.com", 400, "invalid_email", id="non-ascii"),
]


@pytest.mark.parametrize(("path", "email", "status", "code"), REFUSED)
@pytest.mark.parametrize("accept", ["text/html", "application/json"])
def test_refused_requests_never_reach_upstream(
    proxy: Proxy,
    vendor: ReturningAIStandIn,
    caplog: pytest.LogCaptureFixture,
    path: str,
    email: str | None,
    status: int,
    code: str,
    accept: str,
) -> None:
    headers = {"accept": accept}
    if email is not None:
        headers.update(proxy.cookie({"email": email}))
    with caplog.at_level(logging.INFO, logger="widget_proxy"):
        response = proxy.client.get(path, headers=headers)

    assert response.status_code == status
    assert response.headers["cache-control"] == "no-store"
    request_id = response.headers["x-request-id"]
    if accept == "application/json":
        assert response.json()["error"] == code
        assert response.json()["request_id"] == request_id
        message = response.json()["message"]
    else:
        assert response.headers["content-type"].startswith("text/html")
        assert request_id in response.text
        assert "<b>" not in response.text
        message = re.search(r"<h1>(.*?)</h1>", response.text, re.DOTALL).group(1)  # type: ignore[union-attr]
    assert message.strip()  # names the problem
    if code in ("bad_request", "invalid_email"):
        assert "(" in message
    lines = [r.getMessage() for r in caplog.records if r.name == "widget_proxy.request"]
    assert len(lines) == 1
    assert code in lines[0]
    assert request_id in lines[0]
    assert vendor.calls == {}


@pytest.mark.parametrize(
    "cookie_data",
    [
        pytest.param({}, id="empty-session"),
        pytest.param({"name": "Ann"}, id="no-email-key"),
        pytest.param({"email": ""}, id="blank-email"),
    ],
)
def test_sessions_without_email_are_anonymous(
    proxy: Proxy, vendor: ReturningAIStandIn, cookie_data: dict[str, str]
) -> None:
    response = proxy.client.get("/widget", headers=proxy.cookie(cookie_data))

    assert response.status_code == 401
    assert vendor.calls == {}


def test_forged_and_expired_cookies_are_anonymous(proxy: Proxy, vendor: ReturningAIStandIn) -> None:
    other_secret = "x" * 40
    forged = session_cookie(other_secret, {"email": EMAIL})
    expired = proxy.cookie({"email": EMAIL}, timestamp=1_000_000_000)["cookie"]
    for cookie in (f"session={forged}", expired, "session=garbage", "session="):
        assert proxy.client.get("/widget", headers={"cookie": cookie}).status_code == 401
    assert vendor.calls == {}


def test_anonymous_browser_is_sent_to_login(make_proxy: Callable[..., Proxy]) -> None:
    proxy = make_proxy(LOGIN_URL="/login")

    response = proxy.get("/widget/channel/demo-channel?color=dark")

    assert response.status_code == 303
    assert response.headers["location"] == (
        "/login?next=%2Fwidget%2Fchannel%2Fdemo-channel%3Fcolor%3Ddark"
    )
    json_client = proxy.get("/widget", headers={"accept": "application/json"})
    assert json_client.status_code == 401


def test_login_url_with_query_keeps_it(make_proxy: Callable[..., Proxy]) -> None:
    proxy = make_proxy(LOGIN_URL="https://shop.example.com/account/login?from=widget")

    response = proxy.get("/widget")

    assert response.headers["location"] == (
        "https://shop.example.com/account/login?from=widget&next=%2Fwidget"
    )


def test_only_get_is_allowed(proxy: Proxy) -> None:
    response = proxy.client.post("/widget", headers=proxy.cookie({"email": EMAIL}))

    assert response.status_code == 405
    assert "GET" in response.headers["allow"]
