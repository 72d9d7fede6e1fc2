"""Admission's spans: admission, and its steps (IP limit, identity, user limit) as its
children, the user told apart by a pseudonym. Built by `create_app` only when tracing
is on (`ops.tracing`); what a span may hold: `ops.spans`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from opentelemetry.trace import Tracer
from starlette.types import Scope

from ..ops.spans import step
from .admission import Admission, Limits
from .forwarded import TrustedProxies
from .identity import IdentitySource, Visitor

USER: Final = "enduser.pseudo.id"  # semantic conventions: a pseudonymous user id


class Pseudonyms:
    """A user's pseudonym in spans: a keyed hash of their token's cache key (itself
    derived from the session secret), the same in every process of a deployment and
    useless without the secret."""

    def __init__(self, hasher: Callable[[str], str]) -> None:
        self._hasher = hasher

    def __call__(self, visitor: Visitor) -> str:
        return "anonymous" if visitor.identity.anonymous else self._hasher(visitor.token_key)[:16]


class TracedLimits:
    """The rate limits admission counts, each count a span."""

    def __init__(self, limits: Limits, *, tracer: Tracer) -> None:
        self._limits = limits
        self._tracer = tracer

    def count_ip(self, ip: str) -> None:
        with step(self._tracer, "ip limit"):
            self._limits.count_ip(ip)

    def count_user_key(self, key: str) -> None:
        with step(self._tracer, "user limit"):
            self._limits.count_user_key(key)


class TracedIdentities:
    """Who is asking (the session cookie or the trusted header), as a span."""

    def __init__(self, identities: IdentitySource, *, tracer: Tracer) -> None:
        self._identities = identities
        self._tracer = tracer

    def visitor(self, scope: Scope) -> Visitor | None:
        with step(self._tracer, "identity") as span:
            visitor = self._identities.visitor(scope)
            span.set_attribute("widget_proxy.signed_in", visitor is not None)
            return visitor


class TracedAdmission(Admission):
    """Admission as a span, its steps (IP limit, identity, user limit) its children
    (`TracedLimits`, `TracedIdentities`), the user's pseudonym on it."""

    def __init__(
        self,
        identities: IdentitySource,
        proxies: TrustedProxies,
        limits: Limits,
        *,
        tracer: Tracer,
        pseudonyms: Pseudonyms,
        **options: Any,
    ) -> None:
        """`Admission`'s arguments (its parts traced here), and the tracer."""
        traced = TracedIdentities(identities, tracer=tracer), TracedLimits(limits, tracer=tracer)
        super().__init__(traced[0], proxies, traced[1], **options)
        self._tracer = tracer
        self._pseudonyms = pseudonyms

    def visitor(self, scope: Scope) -> Visitor | None:
        with step(self._tracer, "admission") as span:
            visitor = super().visitor(scope)
            if visitor is not None:
                span.set_attribute(USER, self._pseudonyms(visitor))
            return visitor
