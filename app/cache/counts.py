"""Rate counts decided in this process, shared with every other one in the background.

A page view must not wait for the network, so a limit is decided here, against this
process's view of the shared count (the model of Kong's rate-limiting `sync_rate`, and
of Envoy's local limit in front of its global one):

- Each key counts events in `BUCKETS` slots of `period / BUCKETS` seconds, numbered
  from the epoch so that every process agrees on them; the count over the last
  `period` is the slots inside it plus the part of the oldest one still inside
  (a sliding window).
- Events admitted here and not yet in the view are *pending*. Every `sync_interval`
  seconds (after the last sync ended) the pending counts of every key touched since
  are added to the shared store, in batches of `SYNC_BATCH` keys
  (`SharedCounts.add_counts`), which answers each key's totals over all processes:
  those become this process's view, and what was sent leaves the pending counts only
  then. So a count on its way to the store is never out of sight here: one process
  alone never admits more than the limit, however slow the store.
- The view is what the other processes had sent when this one's last sync reached the
  store. One event per key per sync is always decided on it. Past that, a key is busy
  here: once this process has admitted a quarter of the room its view leaves (or the
  view is older than two intervals, or there is none), the key is synced at once (in
  the background); at half, further events wait for that sync (a round trip; they are
  refused with `Retry-After: 1`), since the other processes may be taking the other
  half: however old the view.
- The bound (`admitted_at_most`). An event admitted elsewhere is in this process's view
  at most two intervals and three round trips later: up to `I + R` until its process
  syncs (`I` the interval, `R` a sync's round trips), `R / 2` to reach the store, then
  up to `I + R` until this process syncs and `R / 2` for the answer. Decided on a view
  that old, N processes admit of one key in a window at most the limit plus, for each
  of the N - 1 others, what it admits in `2I + 3R` (a client asking each at `r` a
  second: `floor(r (2I + 3R)) + 1`), and never more than the limit each (each one's
  own count is in its view or pending). The hold at half the room keeps the overshoot
  well below that in practice.
- With a shared store that fails, or none (`memory://`), a sync changes nothing: each
  process's own count is the limit, nothing waits for a sync, and no request fails.
  What could not be sent stays pending, bounded like every key by `max_keys` (the
  least recently used are forgotten, counts and all), and is sent by the next sync
  that is answered. A sync lets the event loop run between its batches, even when the
  store fails each at once.
- Nearly every event is decided in integers: a key counted in this slot already
  holds its counts pruned, and the sum of every slot it and its view hold (the oldest
  one whole) is at least its count; when that leaves room (four times the event's,
  with others counting: nothing to hold or sync early then), the exact count, with
  the part of the oldest slot still inside the window, would admit it too. A key
  counted alone (no shared store) is decided so on its first event in a slot too,
  once the slots that left the window are pruned. Only near a limit, or on a shared
  key's first event in a slot, is the exact count taken. So "least recently used" is
  to the slot: a key's place is that of its first event in the latest slot it was
  counted in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Final, Protocol

from .memory import DEFAULT_MAX_ENTRIES

log = logging.getLogger("widget_proxy.cache")

DEFAULT_SYNC_INTERVAL: Final = 1.0  # seconds between two syncs of a process's counts
BUCKETS: Final = 12  # 5 s slots of a one-minute window
_STALE: Final = (0.0, 0)  # no view yet: none recent, nothing seen
SYNC_BATCH: Final = 100  # keys per round trip: each costs the event loop ~1.5 ms to build and read


class SharedCounts(Protocol):
    async def add_counts(
        self, batch: Sequence[tuple[str, dict[int, int]]], *, oldest: int, keep: float
    ) -> list[dict[int, int]] | None:
        """Add each key's pending count per slot to the shared totals; each key's totals
        per slot from `oldest` on, or None when nothing is shared (now)."""


class WindowCounters:
    def __init__(
        self,
        *,
        period: float = 60.0,
        shared: SharedCounts | None = None,
        sync_interval: float = DEFAULT_SYNC_INTERVAL,
        eager: bool = True,  # sync a busy key at once, and hold it at half its room (below)
        max_keys: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._period = period
        self._width = period / BUCKETS
        self._shared = shared
        self._interval = sync_interval
        self._eager = eager
        self._max_keys = max_keys
        self._clock = clock
        # Per key, flat [slot, count, slot, count, ...], slots ascending, in a plain dict
        # kept in use order (re-inserted when used): compact, since there is one per user
        # and per client IP (an OrderedDict costs ~50 bytes a key more).
        self._pending: dict[str, list[int]] = {}
        self._view: dict[str, list[int]] = {}  # the shared totals at the last sync
        self._touched: set[str] = set()  # keys to sync: counted, or refused, since the last
        self._task: asyncio.Task[None] | None = None
        self._early: asyncio.Task[None] | None = None  # a sync ahead of the interval
        # key → until when its view is recent, and the sum of every slot of the view (at
        # least what it counts in the window, however the window moved since)
        self._fresh: dict[str, tuple[float, int]] = {}
        self._answering = True  # the last sync reached the shared store
        self._syncing = asyncio.Lock()  # one sync at a time: an older answer never wins
        self._closed = False

    def throttle(self, key: str, limit: int) -> float:
        """Count one event against `limit` per period: 0 when allowed, else the seconds
        until it would be (and it is not counted)."""
        now = self._clock()
        # (`now / width` truncated, as `_throttle`'s share of the oldest slot reads it:
        # a float's `//` costs an `fmod` more, on every event)
        slot = int(now / self._width)
        pending = self._pending.get(key)
        if pending:
            if pending[-2] == slot:
                # Counted in this slot already: the key is among the recently used, its
                # counts pruned. Every slot it holds (the oldest one whole) is at least its
                # count in the window, and so are its view's: when even those leave room, the
                # exact count admits it too (with others counting, they must leave four times
                # the event's room on a recent view: nothing to hold or sync early then).
                # Integers only, summed in C: the decision of nearly every event.
                mine = sum(pending[1::2])
                if self._shared is None:
                    if mine < limit:
                        pending[-1] += 1
                        return 0.0
                else:
                    fresh, seen = self._fresh.get(key, _STALE)
                    if (
                        (mine + 1) * 4 + seen <= limit and fresh >= now
                        if self._eager and self._answering
                        else mine + seen < limit
                    ):
                        if key not in self._touched:  # (synced since it was counted)
                            self._touched.add(key)
                            self._start()
                        pending[-1] += 1
                        return 0.0
            elif self._shared is None:
                # The key's first event in this slot (a visitor who comes back every few
                # seconds: most of theirs), counted alone: the slots it holds inside the
                # window, the oldest one whole, are at least its count, so when they
                # leave room the exact count does too. The slots that left the window go
                # first; the key becomes the most recently used, as in `_throttle`.
                if pending[0] < slot - BUCKETS:
                    _prune(pending, slot - BUCKETS)
                if sum(pending[1::2]) < limit:
                    del self._pending[key]
                    self._pending[key] = pending
                    pending += (slot, 1)
                    return 0.0
        return self._throttle(key, limit, now, slot, pending)

    def _throttle(
        self, key: str, limit: int, now: float, slot: int, pending: list[int] | None
    ) -> float:
        """`throttle`, exactly: the part of the oldest slot still inside the window."""
        oldest = slot - BUCKETS  # partly inside the window
        if pending is None:
            pending = self._pending[key] = []
            if len(self._pending) > self._max_keys:
                forgotten = next(iter(self._pending))  # the least recently used
                del self._pending[forgotten]
                self._view.pop(forgotten, None)
                self._fresh.pop(forgotten, None)
                self._touched.discard(forgotten)  # nothing of it is left to send
        else:
            self._pending[key] = self._pending.pop(key)  # now the most recently used
            if pending and pending[0] < oldest:
                _prune(pending, oldest)
        view = self._view.get(key)
        shared = self._shared is not None
        if shared:
            self._touched.add(key)
            self._start()
        inside = 1.0 - (now / self._width - slot)  # of the oldest slot, still in the window
        # `pending` holds no slot before `oldest` now: `_count`, without its loop.
        mine: float = sum(pending[1::2])
        if pending and pending[0] == oldest:
            mine -= pending[1] * (1.0 - inside)
        seen = _count(view, oldest, inside) if view else 0.0
        if mine + seen + 1 > limit:
            return self._wait(pending, view, now, slot, mine + seen + 1 - limit)
        if shared and self._eager and self._answering and mine >= 1:
            # A second event here since the last answered sync: others may be counting
            # this key too.
            room = limit - seen
            if (mine + 1) * 2 > room:
                # Half of the room the view leaves was taken here since the last sync, and
                # the others may have taken the rest: wait for the sync (a round trip),
                # however old the view (an old one leaves more room, not less).
                self._sync_soon()
                return min(self._interval, 1.0)
            if (mine + 1) * 4 > room or self._fresh.get(key, _STALE)[0] < now:
                self._sync_soon()  # a quarter, or an old view (or none): sync it early
        if pending and pending[-2] == slot:
            pending[-1] += 1
        else:  # in place: a sync under way knows the list it read (`_sync`)
            pending += (slot, 1)
        return 0.0

    def _sync_soon(self) -> None:
        if self._early is None or self._early.done():
            self._early = asyncio.get_running_loop().create_task(self.sync())

    def _wait(
        self, pending: list[int], view: list[int] | None, now: float, slot: int, excess: float
    ) -> float:
        """When `excess` events will have left the window, as the oldest slot slides out
        (linearly, over its width) and then each next one."""
        totals = dict.fromkeys(range(slot - BUCKETS, slot + 1), 0)
        for counts in (pending, view or []):
            for i in range(0, len(counts), 2):
                if counts[i] in totals:
                    totals[counts[i]] += counts[i + 1]
        start = now
        end = (slot - BUCKETS + 1) * self._width + self._period  # the oldest slot is gone
        for oldest in range(slot - BUCKETS, slot + 1):
            leaving = totals[oldest] * (end - start) / self._width  # what's left of it
            if leaving >= excess - 1e-9:  # the two are often equal, but for rounding
                return start - now + excess / totals[oldest] * self._width
            excess -= leaving
            start, end = end, end + self._width
        return self._period  # not reached: the newest slot holds the excess

    async def sync(self) -> None:
        """Add this process's pending counts to the shared totals and read them back."""
        if self._shared is None:
            return
        async with self._syncing:
            await self._sync(self._shared)

    async def _sync(self, store: SharedCounts) -> None:
        if not self._touched:
            return
        keys, self._touched = list(self._touched), set()
        oldest = int(self._clock() / self._width) - BUCKETS
        for start in range(0, len(keys), SYNC_BATCH):
            if start:
                # A store that fails at once never awaits: let page views in between.
                await asyncio.sleep(0)
            # Read now, and left pending (counted in every decision here) until the answer
            # holds them: what is admitted while the batch travels is added on top.
            lists = [(key, self._pending.get(key)) for key in keys[start : start + SYNC_BATCH]]
            chunk = [(key, counts) for key, counts in lists if counts is not None]
            sent = [(key, _as_dict(counts, oldest)) for key, counts in chunk]
            try:
                totals = await store.add_counts(sent, oldest=oldest, keep=self._period * 2)
            except Exception:  # the store logs its own outage; a sync must never stop
                log.debug("rate count sync failed", exc_info=True)
                totals = None
            if totals is None:  # nothing shared now: keep counting here, send them next time
                self._answering = False
                self._touched.update(key for key, counts in chunk if self._kept(key, counts))
                continue
            self._answering = True
            fresh = self._clock() + 2 * self._interval
            for (key, counts), (_, done), shared in zip(chunk, sent, totals, strict=True):
                if self._kept(key, counts):  # (else forgotten meanwhile: its answer too)
                    _subtract(counts, done)  # now in the view
                    self._view[key] = [n for slot in sorted(shared) for n in (slot, shared[slot])]
                    self._fresh[key] = (fresh, sum(shared.values()))

    def _kept(self, key: str, counts: list[int]) -> bool:
        """Whether `counts` are still `key`'s: not forgotten (and counted anew) since."""
        return self._pending.get(key) is counts

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        # Until closed, not only until cancelled: a client library that turns a cancel
        # into a failed call would keep this loop, and the shutdown awaiting it, going.
        while not self._closed:
            await asyncio.sleep(self._interval)
            await self.sync()

    async def aclose(self) -> None:
        """Stop syncing, after one last sync of what is pending."""
        self._closed = True
        for task in (self._task, self._early):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._early = None
        with contextlib.suppress(Exception):
            await self.sync()


def _count(counts: list[int], oldest: int, inside: float) -> float:
    """The events of `counts` inside the window: every slot after `oldest`, and the
    `inside` share of `oldest` itself."""
    total: float = sum(counts[1::2])  # in C: this runs twice on every request
    for i in range(0, len(counts), 2):  # slots ascending: only the first few have left
        slot = counts[i]
        if slot > oldest:
            break
        total -= counts[i + 1] if slot < oldest else counts[i + 1] * (1.0 - inside)
    return total


def _subtract(counts: list[int], sent: dict[int, int]) -> None:
    """Take the `sent` events out of `counts`, in place; slots left empty go."""
    counts[:] = [
        x
        for i in range(0, len(counts), 2)
        if (left := counts[i + 1] - sent.get(counts[i], 0)) > 0
        for x in (counts[i], left)
    ]


def _prune(counts: list[int], oldest: int) -> None:
    keep = next((i for i in range(0, len(counts), 2) if counts[i] >= oldest), len(counts))
    del counts[:keep]


def _as_dict(counts: list[int], oldest: int) -> dict[int, int]:
    return {counts[i]: counts[i + 1] for i in range(0, len(counts), 2) if counts[i] >= oldest}


def admitted_at_most(
    limit: int, *, processes: int, rate: float, interval: float, round_trip: float
) -> int:
    """The most `processes` admit of one key in a window while the store answers, if one
    client's requests reach each at up to `rate` a second (the module's docstring)."""
    unseen = math.floor(rate * (2 * interval + 3 * round_trip)) + 1
    return limit + (processes - 1) * min(limit, unseen)


def retry_after(wait: float) -> str:
    """`Retry-After` for a wait: whole seconds, at least 1, never early."""
    return str(max(1, math.ceil(wait)))
