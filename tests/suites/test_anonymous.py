"""Visitors who are not signed in (`ALLOW_ANONYMOUS`), and the token endpoint's shape,
against real proxies in front of each vendor's stand-in."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest

from tests.support import EMAIL, UNLIMITED, Proxy
from widget_proxy.demo import demo_settings, stand_in
from widget_proxy.providers import StandIn
from widget_proxy.servers import BackgroundServer


@pytest.fixture
def vendor_proxy(
    make_proxy: Callable[..., Proxy],
) -> Iterator[Callable[..., tuple[Any, Proxy]]]:
    """A proxy for `provider`, in front of a fresh stand-in of it on a real server."""
    servers: list[BackgroundServer] = []

    def start(provider: str, **env: str) -> tuple[Any, Proxy]:
        vendor: StandIn = stand_in(provider)
        server = BackgroundServer(vendor.app(), timeout_graceful_shutdown=1).__enter__()
        servers.append(server)
        settings = demo_settings(vendor, server.url, **{**UNLIMITED, "LOGIN_URL": "", **env})
        return vendor, make_proxy(settings)

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def attribute(page: str, name: str) -> str:
    found = re.search(rf'{name}="([^"]*)"', page)
    assert found, f"no {name} in the page"
    return html.unescape(found.group(1))


def test_an_anonymous_shopper_gets_the_shop_token(
    vendor_proxy: Callable[..., tuple[Any, Proxy]],
) -> None:
    vendor, proxy = vendor_proxy("neuroon")

    page = proxy.get("/widget")
    answer = proxy.client.post("/widget/token")
    signed_in = proxy.client.post("/widget/token", headers=proxy.cookie({"email": EMAIL}))

    assert page.status_code == 200
    token = attribute(page.text, "data-token")
    assert vendor.token_problem(token) is None
    assert answer.status_code == 200
    assert answer.json()["token"] == token  # one token for every visitor of the shop
    assert signed_in.json()["token"] == token
    assert 0 < answer.json()["expiresIn"] <= 82800  # re-issued after NEUROON_ROTATE_AFTER
    assert vendor.calls["token_issue"] == 1


def test_anonymous_visitors_stay_behind_the_ip_limit_and_the_origin_guard(
    vendor_proxy: Callable[..., tuple[Any, Proxy]],
) -> None:
    vendor, proxy = vendor_proxy("neuroon", RATE_LIMIT_IP_PER_MINUTE="2")

    statuses = [proxy.get("/widget").status_code for _ in range(3)]
    limited = proxy.client.post("/widget/token")
    foreign = proxy.client.post(
        "/widget/token", headers={"origin": "https://evil.example", "accept": "application/json"}
    )

    assert statuses == [200, 200, 429]
    assert limited.status_code == 429
    assert 55 <= int(limited.headers["retry-after"]) <= 65  # when the first two leave
    assert foreign.status_code == 403
    assert foreign.json()["error"] == "origin_not_allowed"
    assert vendor.calls["token_issue"] == 1  # the refused requests never reached Neuroon


def test_without_allow_anonymous_neuroon_asks_for_a_sign_in(
    vendor_proxy: Callable[..., tuple[Any, Proxy]],
) -> None:
    vendor, proxy = vendor_proxy("neuroon", ALLOW_ANONYMOUS="false")

    assert proxy.get("/widget").status_code == 401
    assert proxy.client.post("/widget/token").status_code == 401
    assert vendor.calls["token_issue"] == 0


def test_hissuno_anonymous_visitors_get_the_widget_without_a_token(
    vendor_proxy: Callable[..., tuple[Any, Proxy]],
) -> None:
    vendor, proxy = vendor_proxy("hissuno", ALLOW_ANONYMOUS="true")

    page = proxy.get("/widget")
    answer = proxy.client.post("/widget/token")
    signed_in = proxy.client.post("/widget/token", headers=proxy.cookie({"email": EMAIL}))

    assert page.status_code == 200
    assert attribute(page.text, "data-widget-token") == ""
    assert answer.status_code == 200
    assert answer.json() == {"token": None}
    claims = jwt.decode(signed_in.json()["token"], vendor.secret_key, algorithms=["HS256"])
    assert claims["userId"] == EMAIL


def test_hissuno_without_allow_anonymous_asks_for_a_sign_in(
    vendor_proxy: Callable[..., tuple[Any, Proxy]],
) -> None:
    _, proxy = vendor_proxy("hissuno")

    assert proxy.get("/widget").status_code == 401
    assert proxy.client.post("/widget/token").json()["error"] == "not_authenticated"


@pytest.mark.parametrize("provider", ["returningai", "returningai-sdk", "hissuno"])
def test_the_token_endpoint_answers_what_an_sdk_auth_url_expects(
    vendor_proxy: Callable[..., tuple[Any, Proxy]], provider: str
) -> None:
    """`{"token": …}` (what the Widget SDK's auth-url reads) and when to come back."""
    vendor, proxy = vendor_proxy(provider, TOKEN_REFRESH_MARGIN="30")
    before = time.time()

    answer = proxy.client.post(
        "/widget/token",
        headers={**proxy.cookie({"email": EMAIL}), "content-type": "application/json"},
        content=b"{}",
    )

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert set(body) == {"token", "expiresIn"}
    assert vendor.token_problem(body["token"]) is None
    exp = jwt.decode(body["token"], options={"verify_signature": False})["exp"]
    # Served until its exp minus TOKEN_REFRESH_MARGIN: that is when to ask again.
    assert exp - 30 - (time.time() - before) - 2 <= before + body["expiresIn"] <= exp - 30 + 1
