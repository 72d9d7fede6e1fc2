"""Signed-in users as the proxy sees them: Starlette session cookies."""

from __future__ import annotations

import json
from base64 import b64encode
from typing import Any

import itsdangerous


def email(index: int) -> str:
    return f"user{index}@example.com"


def session_cookie(secret: str, data: dict[str, Any], *, timestamp: float | None = None) -> str:
    """A cookie value exactly as Starlette's SessionMiddleware writes it (signed now, or at
    `timestamp`). The tests sign theirs here too."""
    signer = itsdangerous.TimestampSigner(secret)
    payload = b64encode(json.dumps(data).encode("utf-8"))
    if timestamp is not None:
        signer.get_timestamp = lambda: int(timestamp)  # type: ignore[method-assign]
    return signer.sign(payload).decode("utf-8")


def cookies(secret: str, count: int, first: int = 0) -> list[str]:
    """`Cookie` header values for users `first` … `first + count - 1`."""
    return [
        f"session={session_cookie(secret, {'email': email(i)})}"
        for i in range(first, first + count)
    ]
