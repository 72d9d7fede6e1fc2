"""Who is asking, and whether they may ask now: client IP, identity, rate limits.

Both the widget page and the token endpoint admit a request the same way: count it
against its client IP, find its user, count it against the user. Who the user is
comes with every key derived from it (`Visitor`), made once per session by `visitors`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from starlette.datastructures import Headers
from starlette.types import Scope

from ..ops.requestlog import note_field
from .forwarded import TrustedProxies
from .identity import Derive, Identity, IdentitySource, Visitor
from .ratelimit import RateLimits


def visitors(limits: RateLimits, token_key: Callable[[Identity], str]) -> Derive:
    """How a visitor is made from an identity: its rate-limit key and its token's key."""

    def derive(identity: Identity) -> Visitor:
        return Visitor(identity, limits.user_key(identity.email), token_key(identity))

    return derive


class Limits(Protocol):
    """What admission counts (`RateLimits`; `security.traced.TracedLimits` when tracing)."""

    def count_ip(self, ip: str) -> None: ...

    def count_user_key(self, key: str) -> None: ...


class Admission:
    def __init__(
        self,
        identities: IdentitySource,
        proxies: TrustedProxies,
        limits: Limits,
        *,
        anonymous: Visitor | None = None,
    ) -> None:
        """`anonymous`: the visitor a request without a session is (ALLOW_ANONYMOUS:
        `ANONYMOUS` with its keys), or None when it must sign in."""
        self._identities = identities
        self._proxies = proxies
        self._limits = limits
        self._anonymous = anonymous
        self._behind_proxies = proxies.trusts_anyone  # (else no peer is asked about)

    def renew_anonymous(self, visitor: Visitor) -> None:
        """The anonymous visitor with keys made anew (every user was forgotten)."""
        if self._anonymous is not None:
            self._anonymous = visitor

    def visitor(self, scope: Scope) -> Visitor | None:
        """The signed-in visitor, else the anonymous one if allowed, else None.

        Raises RateLimited or InvalidEmail. An anonymous visitor is counted by IP only:
        there is nobody else to count.
        """
        proxies = self._proxies
        ip = proxies.peer(scope)
        if self._behind_proxies and proxies.trusts(ip):  # its forwarded headers say who
            ip = proxies.client_ip(scope, Headers(scope=scope))
        note_field(scope, "client_ip", ip)  # the request's log line shows the same address
        self._limits.count_ip(ip)
        visitor = self._identities.visitor(scope)
        if visitor is not None:
            self._limits.count_user_key(visitor.rate_key)
            return visitor
        return self._anonymous
