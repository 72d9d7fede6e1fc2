"""Who is asking, and whether they may ask now: client IP, identity, rate limits.

Both the widget page and the token endpoint admit a request the same way: count it
against its client IP, find its user, count it against the user.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.types import Scope

from app.identity import IdentitySource
from app.proxies import TrustedProxies
from app.ratelimit import RateLimits


@dataclass(frozen=True, slots=True)
class Visitor:
    email: str
    key: str  # the user's cache key: an HMAC, no email in it


class Admission:
    def __init__(
        self,
        identities: IdentitySource,
        proxies: TrustedProxies,
        limits: RateLimits,
        user_key: Callable[[str], str],
    ) -> None:
        self._identities = identities
        self._proxies = proxies
        self._limits = limits
        self._user_key = user_key

    async def visitor(self, scope: Scope, headers: Mapping[str, str]) -> Visitor | None:
        """The signed-in visitor, or None; raises RateLimited or InvalidEmail."""
        await self._limits.check_ip(self._proxies.client_ip(scope, headers))
        identity = self._identities.identity(scope, headers)
        if identity is None:
            return None
        key = self._user_key(identity.email)
        await self._limits.check_user(key)
        return Visitor(identity.email, key)
