"""Who is asking: the email in the merchant's signed session cookie, or in a header set
by a trusted identity-aware proxy (oauth2-proxy's `X-Auth-Request-Email`).

The cookie is exactly the one Starlette's `SessionMiddleware` writes (an
itsdangerous-signed, base64-encoded JSON object), so a merchant's Starlette or
FastAPI app that shares `SESSION_SECRET` logs users in for the proxy. The header is
believed only from a peer inside `IDENTITY_PROXIES`. The email is never taken from
anything else the browser controls.
"""

from __future__ import annotations

import json
import string
import time
from base64 import b64decode
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.cookies import _unquote
from typing import Any, Final, Protocol

import itsdangerous
from starlette.requests import cookie_parser
from starlette.types import Scope

from ..errors import BadRequest, InvalidEmail
from ..memo import BoundedMemo
from .forwarded import TrustedProxies

# RFC 5321: a path is at most 256 octets including the angle brackets.
DEFAULT_COOKIE: Final = "session"
DEFAULT_MAX_AGE: Final = 14 * 24 * 60 * 60  # Starlette's SessionMiddleware's default
DEFAULT_EMAIL_KEY: Final = ("email",)
DEFAULT_IDENTITY_HEADER: Final = "X-Auth-Request-Email"  # oauth2-proxy's
MAX_EMAIL = 254
MAX_LOCAL = 64
# RFC 5322 atext: what a dot-atom local part is made of (no quoting, no comments).
ATEXT: Final = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")
# A domain label: letters, digits and hyphens (LDH), not beginning or ending with one.
LDH: Final = frozenset(string.ascii_letters + string.digits + "-")


@dataclass(frozen=True, slots=True)
class Identity:
    email: str
    user_id: str = ""  # the session's user id, or the email when the session has none
    metadata: tuple[tuple[str, str], ...] = ()  # string claims a provider may pass on

    def __post_init__(self) -> None:
        if not self.user_id:
            object.__setattr__(self, "user_id", self.email)

    @property
    def anonymous(self) -> bool:
        return not self.email


# A visitor who is not signed in, admitted with ALLOW_ANONYMOUS.
ANONYMOUS: Final = Identity("")


@dataclass(frozen=True, slots=True)
class Visitor:
    """Who is asking, with every key derived from who they are.

    Worked out once per session (the session memo holds it) by the `Derive` the app
    wires in, so a warm view looks the keys up instead of hashing for each. A source
    given no `Derive` makes visitors without keys (the identity alone).
    """

    identity: Identity
    rate_key: str = ""  # the user's rate-limit count (`RateLimits.user_key`)
    token_key: str = ""  # the user's token in the cache (`TokenCache.key`)


Derive = Callable[[Identity], Visitor]


def validate_email(value: object) -> str:
    """Return the email if it is safe to send as an upstream header, else raise InvalidEmail.

    Only a conservative form is accepted, one no vendor can read two ways: a local
    part of RFC 5322 atext characters and single dots (a dot-atom: no quotes,
    comments, `,;<>"()\\` or whitespace, no leading, trailing or double dot), `@`,
    and a domain of dot-separated letter-digit-hyphen labels. An HTTP header can't
    carry anything beyond visible ASCII faithfully, and whitespace or control
    characters (CR/LF above all) could split or smuggle headers.
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
    if not all(atom and ATEXT.issuperset(atom) for atom in local.split(".")):
        raise InvalidEmail(
            "the session email's local part must be letters, digits, !#$%&'*+-/=?^_`{|}~"
            " and single dots between them"
        )
    if not all(_is_label(label) for label in domain.split(".")):
        raise InvalidEmail("the session email's domain is malformed")
    return value


def _is_label(label: str) -> bool:
    return bool(label) and LDH.issuperset(label) and label[0] != "-" and label[-1] != "-"


def read_cookie(header: str, name: str) -> str:
    """The value of cookie `name` in a `Cookie` header ("" when there is none), read as
    Starlette's `cookie_parser` reads it (the last of that name wins), without a
    dictionary of every other cookie: a warm view reads one cookie out of the header."""
    found = ""
    if not name:  # cookies without a name are this one (as browsers read them)
        return cookie_parser(header).get("", "")
    if name not in header:  # (in C: a header without it costs no split)
        return found
    for chunk in header.split(";") if ";" in header else (header,):
        key, eq, value = chunk.partition("=")
        if eq and key.strip() == name:
            value = value.strip()
            found = _unquote(value) if value[:1] == '"' else value  # (only a quoted one)
    return found


class IdentitySource(Protocol):
    def visitor(self, scope: Scope) -> Visitor | None:
        """Who is signed in, with their keys; None when anonymous. A present but unusable
        email raises."""


class SessionReader:
    """Reads the merchant's session cookie without writing it back.

    Verifying and decoding a cookie is most of a warm page view's work, and a browser
    sends the same cookie with every view, so a verified answer is remembered per
    session cookie value: not per `Cookie` header, whose other cookies are the
    client's to pad. What is remembered is the session's `Visitor` (its identity and
    every key `derive` makes of it) and when the session stops being valid: one
    entry per session, one lookup per view. The memo is bounded by entries and by
    bytes (least recently used first; a value too large to remember is verified on
    every request). Only what passed the signature check is remembered; its age is
    still checked on every request.
    """

    MEMO_SIZE: Final = 4096  # the active sessions; memory stays flat with many users
    MEMO_BYTES: Final = 16 * 1024 * 1024  # 4096 browser-sized (4 KB) cookies and identities
    MEMO_ENTRY_BYTES: Final = 16 * 1024  # a larger session is verified each time

    def __init__(
        self,
        *,
        secret: str,
        cookie: str = DEFAULT_COOKIE,
        max_age: int = DEFAULT_MAX_AGE,
        email_key: tuple[str, ...] = DEFAULT_EMAIL_KEY,
        user_id_key: tuple[str, ...] = (),
        metadata_keys: tuple[tuple[str, ...], ...] = (),
        derive: Derive = Visitor,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._derive = derive
        self._signer = itsdangerous.TimestampSigner(secret)
        self._cookie = cookie
        self._max_age = max_age
        self._email_key = email_key
        self._user_id_key = user_id_key
        self._metadata_keys = metadata_keys
        self._clock = clock
        # The session cookie's value → its visitor and when it stops being valid.
        self.memo: BoundedMemo[str, tuple[Visitor, float]] = BoundedMemo(
            max_entries=self.MEMO_SIZE,
            max_bytes=self.MEMO_BYTES,
            max_entry_bytes=self.MEMO_ENTRY_BYTES,
        )

    def cookie_value(self, headers: Mapping[str, str]) -> str:
        """The session cookie's value as sent ("" when there is none)."""
        return read_cookie(headers.get("cookie", ""), self._cookie)

    def session(self, headers: Mapping[str, str]) -> tuple[dict[str, Any], float] | None:
        """The decoded session and when it was signed; None when absent, forged, old or garbled."""
        return self._verify(self.cookie_value(headers))

    def _verify(self, raw: str) -> tuple[dict[str, Any], float] | None:
        if not raw:
            return None
        try:
            signed, signed_at = self._signer.unsign(
                raw, max_age=self._max_age, return_timestamp=True
            )
            data = json.loads(b64decode(signed))
        # RecursionError: signed, but nested deeper than the decoder goes. Unusable,
        # like a garbled one: anonymous, not a crash.
        except (itsdangerous.BadSignature, ValueError, RecursionError):
            return None
        return (data, signed_at.timestamp()) if isinstance(data, dict) else None

    def identity(self, scope: Scope, headers: Mapping[str, str]) -> Identity | None:
        """Who is signed in; None when anonymous. A present but unusable email raises."""
        visitor = self._known(self.cookie_value(headers))
        return None if visitor is None else visitor.identity

    def visitor(self, scope: Scope) -> Visitor | None:
        # The request's first `Cookie` header, as Starlette's `Headers.get` reads it,
        # straight from the scope: no `Headers` object.
        for key, value in scope["headers"]:
            if key == b"cookie":
                raw = read_cookie(value.decode("latin-1"), self._cookie)
                break
        else:
            return None
        known = self.memo.get(raw)  # (the warm view's one lookup, `_known` without a call)
        if known is not None and known[1] > self._clock():
            return known[0]
        return self._known(raw)

    def _known(self, raw: str) -> Visitor | None:
        if not raw:
            return None
        known = self.memo.get(raw)
        if known is not None:
            visitor, expires = known
            if expires > self._clock():
                return visitor
            self.memo.pop(raw)
        found = self._verify(raw)
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
        visitor = self._derive(identity)
        self.memo.put(raw, (visitor, signed_at + self._max_age))
        return visitor


def _lookup(data: Any, path: tuple[str, ...]) -> Any:
    """The value at a dotted path in the session, or None."""
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


class HeaderIdentity:
    """The email an identity proxy put in a header; from any other peer it is ignored.

    `proxies` are the peers allowed to assert identity (IDENTITY_PROXIES), a list of
    its own: the reverse proxy trusted for `X-Forwarded-For` passes on whatever a
    client sends unless it clears the header, so being trusted for one is not being
    trusted for the other. A header sent twice is refused: which one the identity
    proxy set can't be known. Only the exact name counts: an underscore alias
    (`X_Auth_Request_Email`, oauth2-proxy's CVE-2025-64484) is another header, never
    folded into this one.
    """

    MEMO_SIZE: Final = 4096  # the active users
    MEMO_BYTES: Final = 4 * 1024 * 1024  # 4096 emails and their keys, ~1 KB each at most

    def __init__(
        self,
        *,
        proxies: TrustedProxies,
        header: str = DEFAULT_IDENTITY_HEADER,
        derive: Derive = Visitor,
    ) -> None:
        self._header = header.lower()
        self._raw_header = self._header.encode("latin-1")
        self._proxies = proxies
        self._derive = derive
        # The email → its visitor (an email is at most 254 characters: no entry is large).
        self.memo: BoundedMemo[str, Visitor] = BoundedMemo(
            max_entries=self.MEMO_SIZE, max_bytes=self.MEMO_BYTES
        )

    def visitor(self, scope: Scope) -> Visitor | None:
        identity = self.identity(scope, {})
        if identity is None:
            return None
        # The same users come back: each one's keys are made once (within the memo's bound).
        visitor = self.memo.get(identity.email)
        if visitor is None:
            visitor = self._derive(identity)
            self.memo.put(identity.email, visitor)
        return visitor

    def identity(self, scope: Scope, headers: Mapping[str, str]) -> Identity | None:
        if not self._proxies.trusts(self._proxies.peer(scope)):
            return None
        values = [v for k, v in scope["headers"] if k == self._raw_header]
        if len(values) > 1:
            raise BadRequest(f"{self._header} was sent {len(values)} times")
        value = values[0].decode("latin-1") if values else ""
        return Identity(validate_email(value)) if value else None
