"""Who is asking, and whether they may ask now: client IP, identity, rate limits.

Both the widget page and the token endpoint admit a request the same way: count it
against its client IP, find its user, count it against the user.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import Scope

from ..ops.requestlog import note
from .forwarded import TrustedProxies
from .identity import ANONYMOUS, Identity, IdentitySource
from .ratelimit import RateLimits


class Admission:
    def __init__(
        self,
        identities: IdentitySource,
        proxies: TrustedProxies,
        limits: RateLimits,
        *,
        anonymous: bool = False,
    ) -> None:
        self._identities = identities
        self._proxies = proxies
        self._limits = limits
        self._anonymous = anonymous

    def visitor(self, scope: Scope, headers: Mapping[str, str]) -> Identity | None:
        """The signed-in visitor, else `ANONYMOUS` if allowed, else None.

        Raises RateLimited or InvalidEmail. An anonymous visitor is counted by IP only:
        there is nobody else to count.
        """
        ip = self._proxies.client_ip(scope, headers)
        note(scope, client_ip=ip)  # the request's log line shows the same address
        self._limits.count_ip(ip)
        identity = self._identities.identity(scope, headers)
        if identity is not None:
            self._limits.count_user(identity.email)
            return identity
        return ANONYMOUS if self._anonymous else None
