"""Signed-in users as the proxy sees them: Starlette session cookies."""

from __future__ import annotations

import json
from base64 import b64encode

import itsdangerous


def email(index: int) -> str:
    return f"user{index}@example.com"


def session_cookie(secret: str, address: str) -> str:
    """The cookie value exactly as Starlette's SessionMiddleware writes it."""
    payload = b64encode(json.dumps({"email": address}).encode("utf-8"))
    return itsdangerous.TimestampSigner(secret).sign(payload).decode("utf-8")


def cookies(secret: str, count: int, first: int = 0) -> list[str]:
    """`Cookie` header values for users `first` … `first + count - 1`."""
    return [f"session={session_cookie(secret, email(i))}" for i in range(first, first + count)]
