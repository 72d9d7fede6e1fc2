"""Identity: Starlette's own session cookie, and emails fit for an upstream header."""

from __future__ import annotations

import time
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.support import wait_until
from widget_proxy.errors import InvalidEmail
from widget_proxy.security.identity import Identity, SessionReader, validate_email

SECRET = "a-shared-secret-of-more-than-32-characters"
SCOPE = {"type": "http", "client": ("203.0.113.9", 5555)}


def reader(**options: Any) -> SessionReader:
    return SessionReader(secret=SECRET, **options)


def merchant_login_cookie(session: dict[str, object], cookie: str = "session") -> str:
    """Log in through a real Starlette app's SessionMiddleware and return its cookie."""

    async def login(request: Request) -> PlainTextResponse:
        request.session.update(session)
        return PlainTextResponse("ok")

    merchant = Starlette(
        routes=[Route("/login", login, methods=["POST"])],
        middleware=[Middleware(SessionMiddleware, secret_key=SECRET, session_cookie=cookie)],
    )
    with TestClient(merchant) as client:
        response = client.post("/login")
    value = response.cookies[cookie]
    assert value
    return value


def test_reads_a_cookie_written_by_starlettes_session_middleware() -> None:
    value = merchant_login_cookie({"email": "ann@example.com", "cart": [1, 2]})

    identity = reader().identity(SCOPE, {"cookie": f"session={value}"})

    assert identity == Identity("ann@example.com")


def test_custom_cookie_name_and_nested_email() -> None:
    value = merchant_login_cookie({"user": {"email": "bo@example.com"}}, cookie="shop")

    identity = reader(cookie="shop", email_key=("user", "email")).identity(
        SCOPE, {"cookie": f"other=1; shop={value}"}
    )

    assert identity == Identity("bo@example.com")


@pytest.mark.parametrize(
    "cookie",
    ["", "session=", "session=not-signed", "other=x", "session=e30=.AAAA.bad-signature"],
)
def test_missing_or_forged_cookies_are_anonymous(cookie: str) -> None:
    assert reader().identity(SCOPE, {"cookie": cookie}) is None


def test_a_session_whose_email_is_not_text_is_refused() -> None:
    value = merchant_login_cookie({"email": ["ann@example.com"]})

    with pytest.raises(InvalidEmail):
        reader().identity(SCOPE, {"cookie": f"session={value}"})


@pytest.mark.parametrize(
    "email",
    [
        "ann@example.com",
        "ann.o'neil+tag@sub.example.co.uk",
        "x@y",
        "a" * 64 + "@" + "b" * 185 + ".com",  # 254 characters, the RFC 5321 maximum
    ],
)
def test_valid_emails(email: str) -> None:
    assert validate_email(email) == email


@pytest.mark.parametrize(
    "email",
    [
        "",
        "plain",
        "a@b@c",
        "@example.com",
        "ann@",
        "ann@.example.com",
        "ann@example..com",
        "ann@example.com.",
        "ann @example.com",
        "ann@example.com\r\nx-injected: 1",
        "ann@example.com\n",
        "ann\t@example.com",
        "ann\x00@example.com",
        "ann\x7f@example.com",
        "änn@example.com",
        "a" * 65 + "@example.com",
        "a" * 64 + "@" + "b" * 186 + ".com",  # 255 characters
        42,
        None,
    ],
)
def test_invalid_emails(email: object) -> None:
    with pytest.raises(InvalidEmail):
        validate_email(email)


def test_a_remembered_session_still_ages_out() -> None:
    max_age = 2
    sessions = reader(max_age=max_age)
    value = merchant_login_cookie({"email": "a@b.c"})
    signed = int(time.time())  # the cookie's timestamp is at most this (whole seconds)

    assert sessions.identity(SCOPE, {"cookie": f"session={value}"}) == Identity("a@b.c")
    assert sessions.identity(SCOPE, {"cookie": f"session={value}"}) == Identity("a@b.c")
    # Older than max_age now, remembered or not (ages are counted in whole seconds).
    wait_until(lambda: time.time() >= signed + max_age + 1, timeout=max_age + 5)

    assert sessions.identity(SCOPE, {"cookie": f"session={value}"}) is None


def test_only_verified_cookies_are_remembered() -> None:
    sessions = reader()
    forged = "session=" + merchant_login_cookie({"email": "a@b.c"})[:-3] + "xyz"

    for _ in range(3):
        assert sessions.identity(SCOPE, {"cookie": forged}) is None
