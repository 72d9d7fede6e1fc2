"""`POST /admin/forget`: from ADMIN_ALLOW only, signed with the key SESSION_SECRET
gives, fresh; what it forgets, and nothing personal in its answers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.support import Proxy, token_in
from widget_proxy.admin import HEADER, MAX_BODY, PATH, SKEW, admin_key, sign
from widget_proxy.providers.returningai import ReturningAIStandIn

EMAIL = "gone@example.com"


def post(proxy: Proxy, data: Any, *, secret: str | None = None, raw: bytes | None = None) -> Any:
    body = raw if raw is not None else json.dumps(data).encode()
    key = admin_key(secret or proxy.settings.session_secret.reveal())
    return proxy.client.post(PATH, content=body, headers={HEADER: sign(key, body)})


def test_a_signed_forget_drops_the_users_token(
    make_proxy: Callable[..., Proxy], vendor: ReturningAIStandIn
) -> None:
    proxy = make_proxy()
    cookie = proxy.cookie({"email": EMAIL})
    old = token_in(proxy.get("/widget", headers=cookie).text)

    answer = post(proxy, {"emails": [EMAIL], "at": time.time()})

    assert answer.status_code == 200
    assert answer.json() == {"forgotten": 1}
    assert token_in(proxy.get("/widget", headers=cookie).text) != old
    assert vendor.calls["signin"] == 2


@pytest.mark.parametrize(
    ("data", "status", "says"),
    [
        ({"emails": [EMAIL], "at": time.time() - 10 * SKEW}, 400, "'at'"),
        ({"emails": ["not an email"], "at": None}, 400, "'at'"),
        ({"emails": ["not-an-email"]}, 400, "exactly one '@'"),
        ({"emails": []}, 400, "nobody to forget"),
        ({"emails": "a@example.com"}, 400, "must be a list"),
        ([], 400, "a JSON object"),
    ],
)
def test_a_bad_body_is_refused_with_why(
    make_proxy: Callable[..., Proxy], data: Any, status: int, says: str
) -> None:
    proxy = make_proxy()
    if isinstance(data, dict):
        data.setdefault("at", time.time())
    answer = post(proxy, data)
    assert answer.status_code == status
    assert says in answer.json()["detail"]
    assert "@example.com" not in answer.text


def test_an_unsigned_a_wrongly_signed_or_a_huge_body_is_refused(
    make_proxy: Callable[..., Proxy],
) -> None:
    proxy = make_proxy()
    body = {"emails": [EMAIL], "at": time.time()}
    assert proxy.client.post(PATH, json=body).status_code == 401
    assert post(proxy, body, secret="another-session-secret-" + "x" * 32).status_code == 401
    assert post(proxy, None, raw=b"x" * (MAX_BODY + 1)).status_code == 413


def test_a_peer_outside_admin_allow_is_refused(make_proxy: Callable[..., Proxy]) -> None:
    proxy = make_proxy(ADMIN_ALLOW="10.0.0.0/8")
    answer = post(proxy, {"emails": [EMAIL], "at": time.time()})
    assert answer.status_code == 403
