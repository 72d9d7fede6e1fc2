"""One upstream call per key, however many requests, processes or machines ask.

`SingleFlight` makes concurrent callers in one process share one call; `fill`
adds a lock in the store so that across processes only the lock holder calls
upstream while the others wait for what it writes. `Coalescer.load` is the two
together: what both the token and the page cache do on a miss.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final, TypeVar, cast

from .store import Locks

T = TypeVar("T")
POLL: Final = 0.02  # how often a process waiting on another's lock looks again
DEFAULT_LEASE: Final = 9.0  # longer than one upstream call may take (its deadline + 1 s)


class SingleFlight:
    def __init__(self, on_join: Callable[[], object] | None = None) -> None:
        self._running: dict[str, asyncio.Future[Any]] = {}
        self._on_join = on_join
        self.coalesced = 0  # callers that joined a call already under way

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> T:
        """`work()` once for all concurrent callers with this key; each gets its result.

        The call runs as its own task: a caller that goes away (the browser closed
        the tab) does not cancel it for the others, and when it ends, by result or
        error, the key is free again so the next caller starts afresh.
        """
        future = self._running.get(key)
        if future is None:
            future = asyncio.ensure_future(work())
            self._running[key] = future
            future.add_done_callback(partial(self._finished, key))
        else:
            self.coalesced += 1
            if self._on_join is not None:
                self._on_join()
        return cast(T, await asyncio.shield(future))

    def running(self, key: str) -> bool:
        return key in self._running

    def _finished(self, key: str, future: asyncio.Future[Any]) -> None:
        if self._running.get(key) is future:
            del self._running[key]
        if not future.cancelled():
            future.exception()  # mark it retrieved even if every caller has left


async def fill(
    store: Locks,
    key: str,
    read: Callable[[], Awaitable[T | None]],
    produce: Callable[[], Awaitable[T]],
    lease: float,
) -> T:
    """What `read()` finds, or else what `produce()` makes while holding the lock `key`.

    A process that finds the lock taken polls `read()` until the holder has written
    its result, or takes the lock itself once the holder released it (after an
    error) or its lease ran out (it died).
    """
    while True:
        owner = await store.acquire(key, lease)
        if owner is not None:
            try:
                found = await read()  # filled while we were waiting for the lock?
                return found if found is not None else await produce()
            finally:
                await store.release(key, owner)
        await asyncio.sleep(POLL)
        found = await read()
        if found is not None:
            return found


class Coalescer:
    """read → single-flight → fill under the store's lock: one `produce()` per key."""

    def __init__(
        self,
        locks: Locks,
        *,
        lease: float = DEFAULT_LEASE,
        on_join: Callable[[], object] | None = None,
    ) -> None:
        self._locks = locks
        self._lease = lease
        self.flight = SingleFlight(on_join=on_join)

    async def load(
        self,
        key: str,
        read: Callable[[], Awaitable[T | None]],
        produce: Callable[[], Awaitable[T]],
    ) -> T:
        """What `read()` finds once the key's lock is free, or else what `produce()` makes.

        Concurrent callers in this process share one attempt; other processes wait
        on the lock for what its holder writes.
        """
        return await self.flight.run(
            key, lambda: fill(self._locks, key, read, produce, self._lease)
        )
