"""The shared store: Redis through redis-py's asyncio client.

Entries are written with their remaining lifetime as the key's TTL; locks are
`SET NX PX` with a random owner token, released by a compare-and-delete script so
only the owner can release them.

Every value is stored behind a MAC of its key and bytes, under a key derived from
the proxy's secret: whoever can write to Redis can't copy one user's token onto
another user's key, or forge one. A value that fails the check is a miss, and said.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Final

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from .store import E, Entry
from .topology import (
    MAX_CONNECTIONS,
    TIMEOUT,
    Client,
    census,
    describe,
    redis_client,
)
from .urls import Topology

__all__ = ["MAX_CONNECTIONS", "RATE_GROUPS", "TIMEOUT", "RedisStore", "rate_key"]

MAC_BYTES: Final = 16
RATE_GROUPS: Final = 16  # hash slots the rate keys are spread over (`_rate_key`)
QUIET: Final = 10.0  # seconds between two warnings about forged values

log = logging.getLogger("widget_proxy.cache")

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


# Every script and multi-key command here touches keys of one hash slot, or is split
# per slot (`add_counts`, over the RATE_GROUPS slots of the rate keys), so that the
# same code runs on a Redis Cluster.
# Add each key's pending counts per slot, drop slots that left the window, keep the hash
# while it may still count, and answer the totals: one call for a whole batch, since
# the sync's cost is mostly the client's, per command. Answer: per key, its number of
# slots, then slot, count, slot, count ...
_ADD_COUNTS = """
local oldest, ttl, at = tonumber(ARGV[1]), ARGV[2], 3
local out = {}
for k = 1, #KEYS do
  local pairs = tonumber(ARGV[at])
  at = at + 1
  for i = 1, pairs do
    redis.call('HINCRBY', KEYS[k], ARGV[at], ARGV[at + 1])
    at = at + 2
  end
  local all = redis.call('HGETALL', KEYS[k])
  local kept = {}
  for i = 1, #all, 2 do
    if tonumber(all[i]) < oldest then
      redis.call('HDEL', KEYS[k], all[i])
    else
      kept[#kept + 1] = tonumber(all[i])
      kept[#kept + 1] = tonumber(all[i + 1])
    end
  end
  if #kept > 0 then redis.call('PEXPIRE', KEYS[k], ttl) end
  out[#out + 1] = #kept / 2
  for i = 1, #kept do out[#out + 1] = kept[i] end
end
return out
"""


def rate_key(key: str, prefix: str = "widget-proxy:") -> str:
    """Where a rate-limit key's counts are: `{prefix}rate:{g}:{key}`, `g` one of
    RATE_GROUPS hash tags, so that a Cluster keeps the rate keys in that many slots and
    a sync of any number of keys is at most that many script calls. The group is the
    key's CRC-32, the same in every process (the keys are HMACs: they spread evenly)."""
    group = zlib.crc32(key.encode()) % RATE_GROUPS
    return f"{prefix}rate:{{{group:x}}}:{key}"


class RedisStore:
    def __init__(
        self,
        url: Topology | str | Client,
        *,
        secret: str,
        prefix: str = "widget-proxy:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`url` is a CACHE_URL (one server, a Sentinel's master or a Cluster), read
        (`topology.Topology`) or not, or a client made by `topology.redis_client`; the
        store owns it: aclose() closes it.
        `secret` keys the values' MACs (SESSION_SECRET; every process shares it)."""
        self._mac_key = hmac.new(secret.encode(), b"widget-proxy stored values", "sha256").digest()
        self._warned_at = -QUIET
        self._redis: Client = redis_client(url) if isinstance(url, Topology | str) else url
        self._cluster = isinstance(self._redis, RedisCluster)
        self._prefix = prefix
        self._clock = clock
        self._release = self._redis.register_script(_RELEASE)
        self._add_counts = self._redis.register_script(_ADD_COUNTS)

    @property
    def client(self) -> Client:
        """The client it owns (the forget log writes through it: `forgets.RedisForgets`)."""
        return self._redis

    @property
    def prefix(self) -> str:
        return self._prefix

    async def get(self, key: str, kind: type[E], *, local: bool = True) -> E | None:
        stored = await self._redis.get(self._prefix + key)
        if stored is None:
            return None
        sealed = stored if isinstance(stored, bytes) else stored.encode()
        mac, data = sealed[:MAC_BYTES], sealed[MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(key, data)):
            self._forged(key)
            return None
        try:
            entry = kind.from_bytes(data)
        except (ValueError, KeyError, TypeError):  # another version's, or damaged: a miss
            return None
        return entry if entry.expires_at > self._clock() else None

    async def set(self, key: str, entry: Entry) -> None:
        ttl_ms = int((entry.expires_at - self._clock()) * 1000)
        if ttl_ms <= 0:
            await self.delete(key)
            return
        data = entry.to_bytes()
        await self._redis.set(self._prefix + key, self._mac(key, data) + data, px=ttl_ms)

    def _mac(self, key: str, data: bytes) -> bytes:
        message = key.encode() + b"\0" + data  # the key is bound to the value
        return hmac.new(self._mac_key, message, hashlib.sha256).digest()[:MAC_BYTES]

    def _forged(self, key: str) -> None:
        now = time.monotonic()
        if now - self._warned_at >= QUIET:
            self._warned_at = now
            log.warning(
                "a value in redis failed its check (moved from another key, written by"
                " something else, or under another SESSION_SECRET); treated as a miss"
            )

    async def delete(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)

    async def acquire(self, key: str, lease: float) -> str | None:
        owner = secrets.token_hex(8)
        taken = await self._redis.set(
            f"{self._prefix}lock:{key}", owner, nx=True, px=max(1, int(lease * 1000))
        )
        return owner if taken else None

    async def release(self, key: str, owner: str) -> None:
        await self._release(keys=[f"{self._prefix}lock:{key}"], args=[owner])

    async def add_counts(
        self, batch: Sequence[tuple[str, dict[int, int]]], *, oldest: int, keep: float
    ) -> list[dict[int, int]]:
        if not batch:
            return []
        keys = [self._rate_key(key) for key, _ in batch]
        if not self._cluster:
            return await self._add_counts_of(keys, [counts for _, counts in batch], oldest, keep)
        # A script's keys must share a hash slot: one call per slot (at most RATE_GROUPS
        # of them), all at once.
        by_slot: dict[int, list[int]] = {}
        for at, key in enumerate(keys):
            by_slot.setdefault(key_slot(key.encode()), []).append(at)
        groups = list(by_slot.values())
        answers = await asyncio.gather(
            *(
                self._add_counts_of(
                    [keys[at] for at in group], [batch[at][1] for at in group], oldest, keep
                )
                for group in groups
            )
        )
        totals: list[dict[int, int]] = [{}] * len(batch)
        for group, answer in zip(groups, answers, strict=True):
            for at, total in zip(group, answer, strict=True):
                totals[at] = total
        return totals

    def _rate_key(self, key: str) -> str:
        return rate_key(key, self._prefix)

    async def _add_counts_of(
        self, keys: list[str], batch: Sequence[dict[int, int]], oldest: int, keep: float
    ) -> list[dict[int, int]]:
        args: list[int] = [oldest, int(keep * 1000)]
        for counts in batch:
            args.append(len(counts))
            args.extend(n for slot, count in counts.items() for n in (slot, count))
        flat = await self._add_counts(keys=keys, args=args)
        totals: list[dict[int, int]] = []
        at = 0
        for _ in batch:
            slots, at = int(flat[at]), at + 1
            totals.append({int(flat[i]): int(flat[i + 1]) for i in range(at, at + 2 * slots, 2)})
            at += 2 * slots
        return totals

    async def ping(self) -> None:
        await self._redis.ping()

    def topology(self) -> dict[str, object]:
        """Which kind of Redis this is, and where its master is or how many nodes."""
        return describe(self._redis)

    async def nodes(self) -> dict[str, int]:
        """Data nodes per role (`topology.census`); raises if that can't be known."""
        return await census(self._redis)

    async def aclose(self) -> None:
        await self._redis.aclose()
