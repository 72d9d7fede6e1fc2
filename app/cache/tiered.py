"""This process's memory in front of Redis, and what happens when Redis goes away.

A hit in memory never reaches Redis. A miss asks Redis and keeps what it finds. When
Redis fails, requests go on with this process's memory and in-process locks, one
warning is logged, and Redis is tried again after `RETRY_AFTER` seconds: an outage
never fails a page. The outage ends, with one line saying so, once Redis has answered
for `STABLE_AFTER` seconds without a failure: a restarting Redis that answers one
call and refuses the next makes one warning, not twenty.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Protocol, TypeVar, runtime_checkable

from redis.exceptions import RedisError

from ..ops.metrics import Metrics
from .memory import MemoryStore
from .store import E, Entry, SharedStore

log = logging.getLogger("widget_proxy.cache")

RETRY_AFTER: Final = 1.0
STABLE_AFTER: Final = 5.0
T = TypeVar("T")


@runtime_checkable
class CountsNodes(Protocol):
    async def nodes(self) -> dict[str, int]: ...


class TieredStore:
    def __init__(
        self,
        local: MemoryStore,
        shared: SharedStore,
        *,
        where: str,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._local = local
        self._shared = shared
        self._where = where  # for log lines: the Redis URL without its password
        self._clock = clock
        self._down_until = 0.0
        self._outage_since: float | None = None
        self._answering_since: float | None = None  # during an outage
        self._gauge = (metrics or Metrics()).degraded.labels("cache")
        self._gauge.set(0)
        # A warm view peeks twice (its token, its page): straight at this process's copy.
        self.peek = local.peek  # type: ignore[method-assign]

    def peek(self, key: str, kind: type[E]) -> E | None:
        return self._local.peek(key, kind)

    @property
    def local(self) -> MemoryStore:
        return self._local

    @property
    def shared(self) -> SharedStore:
        return self._shared

    async def get(self, key: str, kind: type[E], *, local: bool = True) -> E | None:
        if local and (entry := self._local.peek(key, kind)) is not None:
            return entry
        found, entry = await self._try(lambda: self._shared.get(key, kind))
        if found and entry is not None:
            await self._local.set(key, entry)
            return entry
        return self._local.peek(key, kind)

    async def set(self, key: str, entry: Entry) -> None:
        await self._local.set(key, entry)
        await self._try(lambda: self._shared.set(key, entry))

    async def delete(self, key: str) -> None:
        await self._local.delete(key)
        await self._try(lambda: self._shared.delete(key))

    async def acquire(self, key: str, lease: float) -> str | None:
        found, owner = await self._try(lambda: self._shared.acquire(key, lease))
        if found:
            return owner
        return await self._local.acquire(key, lease)  # Redis is down: coalesce within this process

    async def release(self, key: str, owner: str) -> None:
        await self._local.release(key, owner)
        await self._try(lambda: self._shared.release(key, owner))

    async def add_counts(
        self, batch: Sequence[tuple[str, dict[int, int]]], *, oldest: int, keep: float
    ) -> list[dict[int, int]] | None:
        """Redis's totals; None while it is down (the counts stay in this process)."""
        found, totals = await self._try(
            lambda: self._shared.add_counts(batch, oldest=oldest, keep=keep)
        )
        return totals if found else None

    def topology(self) -> dict[str, object]:
        return self._shared.topology()

    async def nodes(self) -> dict[str, int] | None:
        """Redis's data nodes per role (`topology.census`), or None if it can't say now.
        Asking the sentinels is not a call to the master: it neither starts nor ends
        an outage."""
        if not isinstance(self._shared, CountsNodes):
            return None
        try:
            return await self._shared.nodes()
        except (RedisError, OSError):
            return None

    async def ping(self) -> None:
        """Raise if Redis can't be reached; readiness asks, and it counts as a call."""
        try:
            await self._shared.ping()
        except (RedisError, OSError) as exc:
            self._failed(exc)
            raise
        self._answered()

    async def aclose(self) -> None:
        await self._shared.aclose()
        await self._local.aclose()

    def degraded(self) -> str | None:
        """Why this process serves from its own memory alone, or None while Redis answers."""
        if self._outage_since is None:
            return None
        seconds = self._clock() - self._outage_since
        return f"redis at {self._where} unreachable for {seconds:.0f} s: serving from memory"

    async def _try(self, call: Callable[[], Awaitable[T]]) -> tuple[bool, T | None]:
        """(True, result) from Redis, or (False, None) while it is failing."""
        if self._clock() < self._down_until:
            return False, None
        try:
            result = await call()
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return False, None
        self._answered()
        return True, result

    def _failed(self, exc: Exception) -> None:
        now = self._clock()
        self._down_until = now + RETRY_AFTER
        self._answering_since = None
        if self._outage_since is None:
            self._outage_since = now
            self._gauge.set(1)
            log.warning(
                "redis at %s is unreachable (%s); serving from this process's cache"
                " until it is back",
                self._where,
                type(exc).__name__,
            )

    def _answered(self) -> None:
        if self._outage_since is None:
            return
        now = self._clock()
        if self._answering_since is None:
            self._answering_since = now
        elif now - self._answering_since >= STABLE_AFTER:
            self._outage_since = self._answering_since = None
            self._gauge.set(0)
            log.warning("redis at %s is reachable again", self._where)
