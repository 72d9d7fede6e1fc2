"""`POST /admin/forget`: `widget-proxy forget` reaching a running server (`memory://`).

Guarded twice: the direct peer must be inside ADMIN_ALLOW (loopback by default, as
/metrics is), and the body must be signed (`sign`) with a key derived from
SESSION_SECRET, which the command line reads from the same settings. The key never
travels: a reverse proxy on the same host (a loopback peer for every client it
forwards) passes nothing that opens the endpoint. A signed body is good for `SKEW`
seconds; replaying it within them forgets the same users again (a new signin, no more).

The body: `{"emails": [...], "all": false, "at": <unix time>}`; the answer:
`{"forgotten": n}` (-1: everybody), never an email.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .cache.revocation import Revocations
from .errors import InvalidEmail
from .security.forwarded import Network, TrustedProxies
from .security.identity import validate_email

PATH: Final = "/admin/forget"
HEADER: Final = "x-widget-proxy-signature"
SKEW: Final = 60.0  # seconds a signed body is good for, either way
MAX_BODY: Final = 256 * 1024  # about a thousand emails
MAX_EMAILS: Final = 1000


def admin_key(secret: str) -> bytes:
    """The signing key: SESSION_SECRET's, for this purpose only."""
    return hmac.new(secret.encode(), b"widget-proxy admin", hashlib.sha256).digest()


def sign(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


class ForgetEndpoint:
    def __init__(
        self,
        revocations: Revocations,
        *,
        key: bytes,
        allow: tuple[Network, ...],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._revocations = revocations
        self._key = key
        self._allowed = TrustedProxies(allow)
        self._clock = clock

    async def respond(self, request: Request) -> Response:
        if not self._allowed.trusts(self._allowed.peer(request.scope)):
            return _refuse(403, "forbidden", "not from an address in ADMIN_ALLOW")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return _refuse(413, "too_large", f"the body is over {MAX_BODY} bytes")
        signature = request.headers.get(HEADER, "")
        if not hmac.compare_digest(signature.encode(), sign(self._key, body).encode()):
            return _refuse(401, "bad_signature", f"{HEADER} is missing or wrong")
        try:
            emails, everybody = self._read(body)
        except (ValueError, InvalidEmail) as exc:
            return _refuse(400, "bad_request", str(exc))
        forgotten = await self._revocations.forget(emails, everybody=everybody)
        return JSONResponse({"forgotten": forgotten}, headers={"cache-control": "no-store"})

    def _read(self, body: bytes) -> tuple[list[str], bool]:
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        at = data.get("at")
        if not isinstance(at, int | float) or abs(self._clock() - at) > SKEW:
            raise ValueError(f"'at' must be the time it was signed (within {SKEW:.0f} s)")
        emails, everybody = data.get("emails", []), data.get("all", False)
        if not isinstance(emails, list) or not isinstance(everybody, bool):
            raise ValueError("'emails' must be a list and 'all' true or false")
        if len(emails) > MAX_EMAILS:
            raise ValueError(f"at most {MAX_EMAILS} emails at once")
        if not everybody and not emails:
            raise ValueError("nobody to forget: give emails, or all")
        return [validate_email(e) for e in emails], everybody


def _refuse(status: int, code: str, detail: str) -> Response:
    return JSONResponse(
        {"error": code, "detail": detail}, status_code=status, headers={"cache-control": "no-store"}
    )
