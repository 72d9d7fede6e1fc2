"""Who is asking: the email in the merchant's signed session cookie, or in a header set
by a trusted identity-aware proxy (oauth2-proxy's `X-Auth-Request-Email`).

The cookie is exactly the one Starlette's `SessionMiddleware` writes (an
itsdangerous-signed, base64-encoded JSON object), so a merchant's Starlette or
FastAPI app that shares `SESSION_SECRET` logs users in for the proxy. The header is
believed only from a peer inside `TRUSTED_PROXIES`. The email is never taken from
anything else the browser controls.
"""

from __future__ import annotations

import json
import time
from base64 import b64decode
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import itsdangerous
from starlette.requests import cookie_parser
from starlette.types import Scope

from ..errors import InvalidEmail
from .forwarded import TrustedProxies

# RFC 5321: a path is at most 256 octets including the angle brackets.
MAX_EMAIL = 254
MAX_LOCAL = 64


@dataclass(frozen=True, slots=True)
class Identity:
    email: str
    user_id: str = ""  # the session's user id, or the email when the session has none
    metadata: tuple[tuple[str, str], ...] = ()  # string claims a provider may pass on

    def __post_init__(self) -> None:
        if not self.user_id:
            object.__setattr__(self, "user_id", self.email)


def validate_email(value: object) -> str:
    """Return the email if it is safe to send as an upstream header, else raise InvalidEmail.

    Only visible ASCII is accepted: an HTTP header can't carry anything else
    faithfully, and whitespace or control characters (CR/LF above all) could split
    or smuggle headers.
    """
    if not isinstance(value, str):
        raise InvalidEmail("the session email is not a string")
    if not value or len(value) > MAX_EMAIL:
        raise InvalidEmail(f"the session email is {len(value)} characters long (1-{MAX_EMAIL})")
    if not all("\x21" <= ch <= "\x7e" for ch in value):
        raise InvalidEmail("the session email has whitespace, control or non-ASCII characters")
    local, at, domain = value.partition("@")
    if not at or "@" in domain:
        raise InvalidEmail("the session email must have exactly one '@'")
    if not local or len(local) > MAX_LOCAL:
        raise InvalidEmail(f"the session email's local part must be 1-{MAX_LOCAL} characters")
    if not domain or domain.startswith(".") or domain.endswith(".") or ".." in domain:
        raise InvalidEmail("the session email's domain is malformed")
    return value


class IdentitySource(Protocol):
    def identity(self, scope: Scope, headers: Mapping[str, str]) -> Identity | None:
        """Who is signed in; None when anonymous. A present but unusable email raises."""


class SessionReader:
    """Reads the merchant's session cookie without writing it back.

    Verifying and decoding a cookie is most of a warm page view's work, and a browser
    sends the same cookie with every view, so a verified answer is remembered per
    `Cookie` header (bounded, least recently used first). Only what passed the
    signature check is remembered; its age is still checked on every request.
    """

    MEMO_SIZE: Final = 4096  # the active sessions; memory stays flat with many users

    def __init__(
        self,
        *,
        secret: str,
        cookie: str = "session",
        max_age: int = 14 * 24 * 60 * 60,
        email_key: tuple[str, ...] = ("email",),
        user_id_key: tuple[str, ...] = (),
        metadata_keys: tuple[tuple[str, ...], ...] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._signer = itsdangerous.TimestampSigner(secret)
        self._cookie = cookie
        self._max_age = max_age
        self._email_key = email_key
        self._user_id_key = user_id_key
        self._metadata_keys = metadata_keys
        self._clock = clock
        self._memo: OrderedDict[str, tuple[Identity, float]] = OrderedDict()

    def session(self, headers: Mapping[str, str]) -> tuple[dict[str, Any], float] | None:
        """The decoded session and when it was signed; None when absent, forged, old or garbled."""
        raw = cookie_parser(headers.get("cookie", "")).get(self._cookie)
        if not raw:
            return None
        try:
            signed, signed_at = self._signer.unsign(
                raw, max_age=self._max_age, return_timestamp=True
            )
            data = json.loads(b64decode(signed))
        except (itsdangerous.BadSignature, ValueError):
            return None
        return (data, signed_at.timestamp()) if isinstance(data, dict) else None

    def identity(self, scope: Scope, headers: Mapping[str, str]) -> Identity | None:
        cookie = headers.get("cookie", "")
        known = self._memo.get(cookie)
        if known is not None:
            identity, expires = known
            if expires > self._clock():
                self._memo.move_to_end(cookie)
                return identity
            del self._memo[cookie]
        found = self.session(headers)
        if found is None:
            return None
        session, signed_at = found
        email = _lookup(session, self._email_key)
        if email is None or email == "":
            return None
        user_id = _lookup(session, self._user_id_key) if self._user_id_key else None
        metadata = tuple(
            (path[-1], value)
            for path in self._metadata_keys
            if isinstance(value := _lookup(session, path), str)
        )
        identity = Identity(
            validate_email(email),
            user_id=str(user_id) if type(user_id) in (str, int) else "",  # not bool
            metadata=metadata,
        )
        self._memo[cookie] = (identity, signed_at + self._max_age)
        if len(self._memo) > self.MEMO_SIZE:
            self._memo.popitem(last=False)
        return identity


def _lookup(data: Any, path: tuple[str, ...]) -> Any:
    """The value at a dotted path in the session, or None."""
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


class HeaderIdentity:
    """The email a trusted proxy put in a header; from anyone else the header is ignored."""

    def __init__(self, *, proxies: TrustedProxies, header: str = "x-auth-request-email") -> None:
        self._header = header.lower()
        self._proxies = proxies

    def identity(self, scope: Scope, headers: Mapping[str, str]) -> Identity | None:
        if not self._proxies.trusts(self._proxies.peer(scope)):
            return None
        value = headers.get(self._header, "")
        return Identity(validate_email(value)) if value else None
