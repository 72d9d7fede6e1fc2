"""A memo bounded by entries and by bytes: recent answers, in memory that can't grow.

An `lru_cache(maxsize=N)` bounds how many answers it keeps, not how large they are: N
keys of a megabyte each are N megabytes. Whoever controls the keys (a request's
headers, a cookie) controls the memory. `BoundedMemo` bounds both the number of
entries and their estimated total size, and refuses to remember any single entry
larger than a limit of its own, so the worst a hostile key can do is not be remembered.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Final, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# What an OrderedDict entry costs beyond its key and value: the hash table slot and
# the linked-list node that keeps the order (measured on CPython 3.11, rounded up).
ENTRY_OVERHEAD: Final = 100
_DEPTH: Final = 8  # how deep `estimate_size` looks into containers and dataclasses


def estimate_size(value: object, _depth: int = 0) -> int:
    """Roughly how many bytes `value` holds: `sys.getsizeof` of it and of what it contains.

    Strings, bytes and numbers are measured as they are; tuples, lists, sets, dicts
    and dataclasses add what they hold (up to a few levels deep, which is plenty for
    the small records memos hold). Objects shared with others (interned strings, small
    ints) are counted as if owned: an overestimate, never an underestimate of a leaf.
    """
    size = sys.getsizeof(value)
    if _depth >= _DEPTH or isinstance(value, str | bytes | bytearray | int | float):
        return size
    if isinstance(value, tuple | list | set | frozenset):
        return size + sum(estimate_size(item, _depth + 1) for item in value)
    if isinstance(value, dict):
        return size + sum(
            estimate_size(k, _depth + 1) + estimate_size(v, _depth + 1) for k, v in value.items()
        )
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return size + sum(
            estimate_size(getattr(value, f.name), _depth + 1) for f in dataclasses.fields(value)
        )
    return size


def entry_size(key: object, value: object) -> int:
    """The default weight of an entry: its key and value as `estimate_size` sees them,
    plus the memo's own bookkeeping per entry."""
    return estimate_size(key) + estimate_size(value) + ENTRY_OVERHEAD


class BoundedMemo(Generic[K, V]):
    """A least-recently-used memo with two bounds: `max_entries` and `max_bytes`.

    - At most `max_entries` entries are kept.
    - The estimated size of all entries together (keys and values, as `weigh` says;
      by default `entry_size`) is at most `max_bytes`.
    - An entry heavier than `max_entry_bytes` (default: `max_bytes`) is not kept at
      all: `put` forgets any older value under its key and stores nothing, so one huge
      key can't evict everything else either. Use a limit well below `max_bytes`.

    When a `put` goes over either bound, the least recently used entries (by `get`
    hits and `put`s) are evicted until both hold again. Sizes are estimates, not
    measurements of the process: what they bound is how much a memo can be made to
    hold, which is what a client controlling its keys must not decide.

    None is not a value it can hold: `get` answers None for "not remembered".

    It is safe to share between threads (one lock, held for the changes that keep the
    size bounded; `get` needs none; `weigh` and a `get_or_compute` computation run
    outside it).
    """

    def __init__(
        self,
        *,
        max_entries: int,
        max_bytes: int,
        max_entry_bytes: int | None = None,
        weigh: Callable[[K, V], int] = entry_size,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("a memo needs room for at least one entry and one byte")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_entry_bytes = (
            max_bytes if max_entry_bytes is None else min(max_bytes, max_entry_bytes)
        )
        self._weigh = weigh
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    @property
    def nbytes(self) -> int:
        """The estimated size of every entry held now (at most `max_bytes`)."""
        return self._bytes

    def keys(self) -> list[K]:
        """The keys held now, least recently used first (a copy)."""
        with self._lock:
            return list(self._entries)

    def get(self, key: K) -> V | None:
        """The value remembered under `key` (now the most recently used), or None."""
        # Without the lock: each OrderedDict call is atomic (the GIL), and `get` changes
        # no size; a hit is the hot path of every page view (several memos each).
        found = self._entries.get(key)
        if found is None:
            return None
        try:  # noqa: SIM105 (suppress() costs a context manager on every hit)
            self._entries.move_to_end(key)
        except KeyError:  # evicted by another thread between the two calls: still a hit
            pass
        return found[0]

    def put(self, key: K, value: V) -> None:
        """Remember `value` under `key`, evicting the least recently used to stay bounded."""
        weight = self._weigh(key, value)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if weight > self.max_entry_bytes:
                return
            self._entries[key] = (value, weight)
            self._bytes += weight
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped

    def pop(self, key: K) -> V | None:
        """Forget `key`; its value, or None if it was not remembered."""
        with self._lock:
            found = self._entries.pop(key, None)
            if found is None:
                return None
            self._bytes -= found[1]
            return found[0]

    def discard(self, doomed: Callable[[K, V], bool]) -> list[V]:
        """Forget every entry `doomed(key, value)` says; their values."""
        with self._lock:
            keys = [k for k, (v, _) in self._entries.items() if doomed(k, v)]
            dropped = []
            for key in keys:
                value, weight = self._entries.pop(key)
                self._bytes -= weight
                dropped.append(value)
            return dropped

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def get_or_compute(self, key: K, compute: Callable[[K], V]) -> V:
        """The remembered value, or `compute(key)`, remembered if it fits."""
        found = self.get(key)
        if found is None:
            found = compute(key)
            self.put(key, found)
        return found
