"""The store interfaces: cache entries, locks and rate counters shared by every process.

Three narrow protocols, because not every user needs every part: the token and page
caches keep `Entries` and take `Locks`; the rate limits count in each process and add
their counts to the shared store in the background (`counts.SharedCounts`).

    Store            what the app is given: all three, plus `peek` at this process's copy
    └── SharedStore  what Redis offers: all three, nothing held in this process

`memory.MemoryStore` is a `Store` for one process; `redis.RedisStore` is a
`SharedStore`; `tiered.TieredStore` puts a memory store in front of a shared one, so a
warm page view touches neither the network nor a decoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, Self, TypeVar


class Entry(Protocol):
    """A cached value that knows when it is dead and how to travel as bytes."""

    @property
    def expires_at(self) -> float: ...

    def to_bytes(self) -> bytes: ...

    @classmethod
    def from_bytes(cls, data: bytes) -> Self: ...


E = TypeVar("E", bound=Entry)


class Entries(Protocol):
    async def get(self, key: str, kind: type[E], *, local: bool = True) -> E | None:
        """The entry, or None. `local=False` skips this process's copy for the shared one."""

    async def set(self, key: str, entry: Entry) -> None:
        """Keep `entry` until its `expires_at`."""

    async def delete(self, key: str) -> None: ...


class Locks(Protocol):
    async def acquire(self, key: str, lease: float) -> str | None:
        """Take the lock named `key` for `lease` seconds; its owner token, or None if held."""

    async def release(self, key: str, owner: str) -> None:
        """Give the lock back, only if `owner` still holds it."""


class SharedStore(Entries, Locks, Protocol):
    async def add_counts(
        self, batch: Sequence[tuple[str, dict[int, int]]], *, oldest: int, keep: float
    ) -> list[dict[int, int]] | None:
        """See `counts.SharedCounts`."""

    async def ping(self) -> None:
        """Raise if the store can't be reached."""

    def topology(self) -> dict[str, object]:
        """What kind of store this is (memory, single, sentinel, cluster) and where."""

    async def aclose(self) -> None: ...


class Store(SharedStore, Protocol):
    def peek(self, key: str, kind: type[E]) -> E | None:
        """The entry if this process holds it, without waiting; None otherwise."""

    def degraded(self) -> str | None:
        """Why the store works in a lesser mode now (shared part unreachable), or None."""
