"""Rate limits per user and per client IP, counted in the cache store.

With Redis every worker and instance shares one count; with the memory store each
process counts alone. Keys are HMACs, like the token cache's: no email or IP sits in
Redis key names.
"""

from __future__ import annotations

import math
from typing import Final

from ..cache.keys import Keys
from ..cache.store import Counters
from ..errors import RateLimited
from ..ops.metrics import Metrics

PERIOD: Final = 60.0


class RateLimits:
    def __init__(
        self,
        counters: Counters,
        *,
        keys: Keys,
        per_user: int = 60,
        per_ip: int = 120,
        metrics: Metrics | None = None,
    ) -> None:
        self._counters = counters
        self._refused = (metrics or Metrics()).rate_limited
        self._per_user = per_user
        self._per_ip = per_ip
        self._hash = keys.hasher(b"widget-proxy rate limit key")

    async def check_ip(self, ip: str) -> None:
        await self._check(f"ip:{self._hash(ip)}", self._per_ip, "ip")

    async def check_user(self, email: str) -> None:
        await self._check(f"user:{self._hash(email)}", self._per_user, "user")

    async def _check(self, key: str, limit: int, who: str) -> None:
        wait = await self._counters.throttle(key, limit, PERIOD)
        if wait > 0:
            self._refused.labels(who).inc()
            raise RateLimited(
                f"more than {limit} requests a minute from this {who}",
                retry_after=str(max(1, math.ceil(wait))),
            )
