"""Rate limits per user and per client IP, counted in the cache store.

With Redis every worker and instance shares one count; with the memory store each
process counts alone. Keys are HMACs, like the token cache's: no email or IP sits in
Redis key names.
"""

from __future__ import annotations

import math

from app.cache import Store
from app.errors import RateLimited
from app.metrics import Metrics
from app.providers.base import Hasher
from app.settings import Settings

PERIOD = 60.0


class RateLimits:
    def __init__(self, settings: Settings, store: Store, metrics: Metrics | None = None) -> None:
        self._store = store
        self._refused = (metrics or Metrics()).rate_limited
        self._per_user = settings.rate_limit_per_minute
        self._per_ip = settings.rate_limit_ip_per_minute
        self._hash = Hasher(settings, b"widget-proxy rate limit key")

    async def check_ip(self, ip: str) -> None:
        await self._check(f"ip:{self._hash(ip)}", self._per_ip, "ip")

    async def check_user(self, email: str) -> None:
        await self._check(f"user:{self._hash(email)}", self._per_user, "user")

    async def _check(self, key: str, limit: int, who: str) -> None:
        wait = await self._store.throttle(key, limit, PERIOD)
        if wait > 0:
            self._refused.labels(who).inc()
            raise RateLimited(
                f"more than {limit} requests a minute from this {who}",
                retry_after=str(max(1, math.ceil(wait))),
            )
