"""Forgetting a user: every process stops serving their cached token and pages.

A user's token is cached under a key derived once per session (`Visitor.token_key`,
kept in the session memo), and their rendered answers under that key (`views.Views`).
Forgetting a user gives them a new *version*: a random suffix appended to every key
derived for them from then on (and an *epoch* appended to every key, for `--all`). A
process that learns of it drops the session memo entries of that user (and their
answers and tokens held here), so the next view derives the new key, finds nothing
under it anywhere, and signs in again: once across the deployment, since the new key
is the same in every process and a miss is coalesced under it (`flight.Coalescer`).

Nothing is checked on the warm path: a forgotten key is simply no longer derived. What
was under the old key (in Redis too, by a request that was in flight) is never asked
for again, and expires with its TTL.

How each process learns it (`ForgetLog`): with Redis, the versions are written to Redis
and a pub/sub message wakes every process to read them (`forgets.RedisForgets`), and
each process reads them again at every sync (`interval`): one GET when nothing changed,
so a process that missed the message (Redis briefly down, its subscription dropped)
still learns at its next sync. With `memory://` under `serve --workers N`, the workers
share a file (`FileForgets`), read at each sync. A version is kept `keep` seconds
(longer than any cached token lives), then forgotten: the user's keys are the plain
ones again, under which nothing from before is left.

Only a keyed hash of the email (`Hasher`, its own purpose) is written anywhere: the
email itself never leaves the process that was asked to forget it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

from .keys import Hasher

log = logging.getLogger("widget_proxy.cache")

PURPOSE: Final = b"widget-proxy forget"
DEFAULT_INTERVAL: Final = 1.0  # seconds between two reads of the log (RATE_LIMIT_SYNC_INTERVAL)
DEFAULT_KEEP: Final = 2 * 3600.0 + 60  # twice TOKEN_MAX_TTL's default, and a minute
RETRY_PAUSE: Final = 1.0  # before subscribing again after the subscription failed
CANCEL_AGAIN: Final = 0.1  # seconds before a reader still running is cancelled again
START_WAIT: Final = 2.0  # the longest a start waits for the log (Redis down: not longer)

# A user's hash → (the suffix of their keys, when it was forgotten: unix time)
Versions = dict[str, tuple[str, float]]


@dataclass(frozen=True, slots=True)
class Forgotten:
    """What a log holds (or holds new, for a file): merged into what a process knows."""

    epoch: tuple[str, float] | None = None  # the last `--all`
    users: Versions = field(default_factory=dict)


class ForgetLog(Protocol):
    """Where the forgets of every process are written and read back."""

    async def write(self, users: list[str] | None, version: str, at: float) -> None:
        """Record a forget (`users` None: everybody) and tell every process."""

    async def stamp(self) -> object:
        """Changes whenever something was written; cheap (one round trip at most)."""

    async def read(self) -> Forgotten:
        """What was written (a file: since the last read)."""

    def wakeups(self) -> AsyncIterator[None]:
        """Yields when another process wrote (pub/sub), and after each reconnection."""

    async def aclose(self) -> None: ...


Purge = Callable[[frozenset[str] | None], None]  # the users dropped (None: everybody)


class Revocations:
    """This process's versions, the purges that apply them, and the log's readers."""

    def __init__(
        self,
        hasher: Hasher,
        *,
        forget_log: ForgetLog | None = None,
        interval: float = DEFAULT_INTERVAL,
        keep: float = DEFAULT_KEEP,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._hash = hasher
        self._log = forget_log
        self._interval = interval
        self._keep = keep
        self._clock = clock
        self._users: Versions = {}
        self._epoch = ""
        self._stamp: object = None
        self._purges: list[Purge] = []
        self._woken = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._reading = asyncio.Lock()
        self._closing = False

    def user(self, email: str) -> str:
        """Who an email is, as every process names it: a keyed hash (case folded)."""
        return self._hash(email.casefold())

    def suffix(self, email: str | None) -> str:
        """What to append to a key derived for `email` (None: a key naming nobody)."""
        if not self._users or email is None:  # (nobody forgotten: no hash to make)
            return self._epoch
        version = self._users.get(self.user(email))
        return self._epoch if version is None else f"{self._epoch}~{version[0]}"

    def on_purge(self, purge: Purge) -> None:
        """Call `purge` with the users whose keys changed (None: everybody's)."""
        self._purges.append(purge)

    async def forget(self, emails: Iterable[str] = (), *, everybody: bool = False) -> int:
        """Forget `emails` (or everybody) in every process; how many users. Returns once
        written to the log and applied here; if the log can't be written, raises, once
        applied here (the other processes know nothing of it)."""
        users = None if everybody else sorted({self.user(e) for e in emails})
        if users == []:
            return 0
        version, now = secrets.token_hex(6), self._clock()
        try:
            if self._log is not None:
                await self._log.write(users, version, now)
        finally:
            if users is None:
                self.apply(Forgotten(epoch=(version, now)))
            else:
                self.apply(Forgotten(users=dict.fromkeys(users, (version, now))))
        who = (
            "every user"
            if users is None
            else f"{len(users)} user(s) " + " ".join(u[:12] for u in users[:10])
        )
        log.info("forget: %s; every process drops their tokens and pages", who)
        return -1 if users is None else len(users)

    def apply(self, forgotten: Forgotten) -> None:
        """Merge what a log says into what this process knows, and purge what changed.
        A user the log no longer names is kept until `keep` has passed."""
        changed: set[str] = set()
        for user, version in forgotten.users.items():
            known = self._users.get(user)
            if known is None or known[0] != version[0]:
                self._users[user] = version
                changed.add(user)
        horizon = self._clock() - self._keep
        for user in [u for u, (_, at) in self._users.items() if at < horizon]:
            del self._users[user]
            changed.add(user)
        epoch = forgotten.epoch
        if epoch is not None and epoch[0] != self._epoch.lstrip("@") and epoch[1] >= horizon:
            self._epoch = "@" + epoch[0]
            self._purge(None)
        elif changed:
            self._purge(frozenset(changed))

    def _purge(self, users: frozenset[str] | None) -> None:
        for purge in self._purges:
            try:
                purge(users)
            except Exception:  # one part's failure must not keep the others serving it
                log.exception("forget: a purge failed")

    async def sync(self) -> None:
        """Read the log if it changed since the last read (one round trip if not)."""
        if self._log is None:
            return
        async with self._reading:
            stamp = await self._log.stamp()
            if stamp == self._stamp:
                return
            self.apply(await self._log.read())
            self._stamp = stamp

    async def start(self) -> None:
        """Read the log once (at most `START_WAIT` seconds: the syncs go on trying), then
        keep reading it: at each wake-up, and every `interval` seconds."""
        if self._log is None or self._tasks:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._sync_quietly(), START_WAIT)
        self.started()

    def started(self) -> None:
        """Start reading the log in the background, if it is not read yet (an app mounted
        without its lifespan: at its first session)."""
        if self._log is not None and not self._tasks:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # made outside a request (the anonymous visitor's keys)
                return
            self._tasks = [loop.create_task(self._run()), loop.create_task(self._listen())]

    async def _sync_quietly(self) -> None:
        try:
            await self.sync()
        except Exception:  # the store logs its outages; the next sync tries again
            log.debug("forget: reading the log failed", exc_info=True)

    async def _run(self) -> None:
        while not self._closing:
            await self._sync_quietly()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), self._interval)
            self._woken.clear()

    async def _listen(self) -> None:
        assert self._log is not None
        while not self._closing:
            try:
                async for _ in self._log.wakeups():
                    self._woken.set()
            except Exception:
                log.debug("forget: the subscription failed", exc_info=True)
            if not self._closing:
                await asyncio.sleep(RETRY_PAUSE)

    async def aclose(self) -> None:
        """Stop reading the log; returns once the readers ended. A cancel can be lost on
        the way: redis-py's pub/sub closes its connection shielded and swallows a cancel
        that lands there, and Python 3.11's `wait_for` one that lands as its wait ends.
        A reader that lost it would subscribe again on the pool shared with other
        widgets, and this would wait for it forever (`multi.shared`): so the readers stop
        at `_closing` too, and are cancelled again until they end."""
        self._closing = True
        self._woken.set()
        for task in self._tasks:
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=CANCEL_AGAIN)
        self._tasks = []
        if self._log is not None:
            await self._log.aclose()


class FileForgets:
    """A log in a file the workers of one `serve` share (`memory://`): a line per forget,
    appended in one write (`O_APPEND`, well under PIPE_BUF: never cut into another);
    each worker reads what was added since its last read. No wake-ups: read at each sync."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._offset = 0

    async def write(self, users: list[str] | None, version: str, at: float) -> None:
        lines = [f"{version} {at!r} *\n"] if users is None else [
            f"{version} {at!r} {user}\n" for user in users
        ]  # fmt: skip
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            for line in lines:
                os.write(fd, line.encode())
        finally:
            os.close(fd)

    async def stamp(self) -> object:
        try:
            return os.stat(self._path).st_size
        except FileNotFoundError:
            return 0

    async def read(self) -> Forgotten:
        data = _tail(self._path, self._offset)  # a few lines of a local file: no thread
        whole = data[: data.rfind(b"\n") + 1]  # a line still being written: next time
        self._offset += len(whole)
        return parse_lines(whole.decode().splitlines())

    async def wakeups(self) -> AsyncIterator[None]:
        await asyncio.Event().wait()  # never: the syncs read the file
        yield

    async def aclose(self) -> None:
        return None


def _tail(path: str, offset: int) -> bytes:
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            return file.read()
    except FileNotFoundError:
        return b""


def parse_lines(lines: Iterable[str]) -> Forgotten:
    """`version at user` lines (`*`: everybody), oldest first; malformed ones skipped."""
    epoch: tuple[str, float] | None = None
    users: Versions = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 3:
            continue
        version, at, who = parts
        try:
            stamp = float(at)
        except ValueError:
            continue
        if who == "*":
            epoch, users = (version, stamp), {}  # everybody's keys change: theirs too
        else:
            users[who] = (version, stamp)
    return Forgotten(epoch, users)


def as_versions(raw: Mapping[str, str]) -> Versions:
    """`version at` values (as the Redis log keeps them) read; malformed ones skipped."""
    found: Versions = {}
    for user, value in raw.items():
        version, _, at = value.partition(" ")
        with contextlib.suppress(ValueError):
            found[user] = (version, float(at))
    return found
