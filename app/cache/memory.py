"""The in-process store: a bounded least-recently-used map, in-process locks and rates."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Final

from .store import E, Entry

DEFAULT_MAX_ENTRIES: Final = 100_000


class MemoryStore:
    """Holds entries as objects, so a hit costs a dict lookup and nothing else."""

    def __init__(
        self, max_entries: int = DEFAULT_MAX_ENTRIES, clock: Callable[[], float] = time.time
    ) -> None:
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._locks: dict[str, tuple[str, float]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def peek(self, key: str, kind: type[E]) -> E | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry if isinstance(entry, kind) else None

    async def get(self, key: str, kind: type[E], *, local: bool = True) -> E | None:
        return self.peek(key, kind)

    async def set(self, key: str, entry: Entry) -> None:
        if entry.expires_at <= self._clock():
            self._entries.pop(key, None)
            return
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    def drop(self, prefix: str) -> int:
        """Forget every entry whose key starts with `prefix`; how many."""
        doomed = [key for key in self._entries if key.startswith(prefix)]
        for key in doomed:
            del self._entries[key]
        return len(doomed)

    async def acquire(self, key: str, lease: float) -> str | None:
        now = self._clock()
        held = self._locks.get(key)
        if held is not None and held[1] > now:
            return None
        owner = secrets.token_hex(8)
        self._locks[key] = (owner, now + lease)
        return owner

    async def release(self, key: str, owner: str) -> None:
        held = self._locks.get(key)
        if held is not None and held[0] == owner:
            del self._locks[key]

    async def add_counts(
        self, batch: Sequence[tuple[str, dict[int, int]]], *, oldest: int, keep: float
    ) -> None:
        return None  # one process: its own counts are all there is

    def topology(self) -> dict[str, object]:
        return {"topology": "memory"}

    async def ping(self) -> None:
        return None

    def degraded(self) -> str | None:
        return None  # one process's memory is all it ever was

    async def aclose(self) -> None:
        self._entries.clear()
