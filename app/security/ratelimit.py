"""Rate limits per user and per client IP, decided in this process (`cache.counts`).

With Redis every worker and instance shares one count, synced in the background every
`RATE_LIMIT_SYNC_INTERVAL`; with the memory store each process counts alone. Keys are
HMACs, like the token cache's: no email or IP sits in Redis key names.

An IPv4 address is one client; an IPv6 client is a /64, the smallest network a
site or ISP hands out (RFC 6177), so the billions of addresses of one /64 share
one count. An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is its IPv4 address.
"""

from __future__ import annotations

import ipaddress
from typing import Final

from ..cache.counts import WindowCounters, retry_after
from ..cache.keys import Keys
from ..errors import RateLimited
from ..ops.metrics import Metrics
from .forwarded import address

DEFAULT_PER_USER: Final = 60  # requests a minute
DEFAULT_PER_IP: Final = 120  # (a shop's office or a school shares one address)
IPV6_PREFIX: Final = 64
_IPV6_HOST_BITS: Final = (1 << (128 - IPV6_PREFIX)) - 1
# Each address's key is remembered (it comes back with each of its requests), within a
# bound, as `forwarded.TrustedProxies` remembers addresses: 4,096 of at most 64
# characters (an address is never longer; anything longer is hashed each time).
REMEMBERED: Final = 4096
LONGEST_ADDRESS: Final = 64


def ip_client(ip: str) -> str:
    """Whom an address's rate limit counts: an IPv4 address, or an IPv6 address's /64.

    Anything that is not an address (no peer, a garbled forwarded hop) counts as itself.
    """
    if ":" not in ip:  # IPv4 (or not an address): itself, without parsing it
        return ip
    found = address(ip)  # as `forwarded` matches it: a mapped IPv4 address is IPv4
    if found is None:
        return ip
    if isinstance(found, ipaddress.IPv6Address):
        network = ipaddress.IPv6Address(int(found) & ~_IPV6_HOST_BITS)  # drops a %scope
        return f"{network}/{IPV6_PREFIX}"
    return str(found)


class RateLimits:
    def __init__(
        self,
        counters: WindowCounters,
        *,
        keys: Keys,
        per_user: int = DEFAULT_PER_USER,
        per_ip: int = DEFAULT_PER_IP,
        metrics: Metrics | None = None,
    ) -> None:
        self._counters = counters
        self._refused = (metrics or Metrics()).rate_limited
        self._per_user = per_user
        self._per_ip = per_ip
        self._hash = keys.hasher(b"widget-proxy rate limit key")
        self._ip_keys: dict[str, str] = {}  # address → its key

    def count_ip(self, ip: str) -> None:
        """Count a request from `ip` (its /64 for IPv6); RateLimited past the limit."""
        key = self._ip_keys.get(ip) or self._ip_key(ip)
        wait = self._counters.throttle(key, self._per_ip)
        if wait > 0:
            self._refuse(wait, self._per_ip, "ip")

    def tally_ip(self, ip: str) -> None:
        """Count a request from `ip` that was refused already (a 404, a 431, …): it
        uses up the address's room like any other, and is not refused again."""
        self._counters.throttle(self._ip_key(ip), self._per_ip)

    def _ip_key(self, ip: str) -> str:
        key = self._ip_keys.get(ip)
        if key is None:
            key = f"ip:{self._hash(ip_client(ip))}"
            if len(ip) <= LONGEST_ADDRESS:
                if len(self._ip_keys) >= REMEMBERED:
                    self._ip_keys.clear()  # a flood of new clients: start again, not grow
                self._ip_keys[ip] = key
        return key

    def user_key(self, email: str) -> str:
        """The key this user's requests are counted under (a session remembers it)."""
        return f"user:{self._hash(email)}"

    def count_user(self, email: str) -> None:
        """Count a request by this user; RateLimited past the limit."""
        self.count_user_key(self.user_key(email))

    def count_user_key(self, key: str) -> None:
        """`count_user`, by the user's `user_key`."""
        wait = self._counters.throttle(key, self._per_user)
        if wait > 0:
            self._refuse(wait, self._per_user, "user")

    def _refuse(self, wait: float, limit: int, who: str) -> None:
        self._refused.labels(who).inc()
        raise RateLimited(
            f"more than {limit} requests a minute from this {who}", retry_after=retry_after(wait)
        )
