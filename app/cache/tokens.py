"""Widget tokens, cached until shortly before they expire, one issue per key.

Whose token it is and how it is issued is the issuer's business (a vendor's
`providers/*/tokens.py`); this module keeps it: in the store until its `expires_at`,
with concurrent misses coalesced into one issue, across processes too.

A token every visitor shares (`shared=True`: the provider's token names no user) is
one key for the whole shop, so a failed issue fails everybody at once and the next
request would ask again at once: thousands of calls a second to a vendor that is
down or refuses the key. After a failed issue of a shared token the process backs
off: until the back-off has passed (it doubles with each failure in a row, honours the
vendor's Retry-After, and is bounded) every request gets that failure again, with
Retry-After, without asking the vendor; `degraded()` says so for /readyz.
"""

from __future__ import annotations

import json
import logging
import math
import time
from base64 import urlsafe_b64decode
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, Protocol, Self, TypeVar

from ..errors import UpstreamBadResponse, UpstreamError
from ..ops.metrics import Metrics
from ..upstream.breaker import DEFAULT_BREAKER
from .flight import DEFAULT_LEASE, Coalescer
from .store import Store

log = logging.getLogger("widget_proxy.cache")

MAX_TOKEN_LENGTH: Final = 8192
I = TypeVar("I")  # noqa: E741 - who the token is for (the visitor's identity)
I_contra = TypeVar("I_contra", contravariant=True)


@dataclass(frozen=True, slots=True)
class TokenEntry:
    token: str
    expires_at: float  # never served after this (its exp minus the margin, or rotation)
    issued_at: float

    def to_bytes(self) -> bytes:
        return f"{self.expires_at!r}\n{self.issued_at!r}\n{self.token}".encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        expires, issued, token = data.decode().split("\n", 2)
        if not token:
            raise ValueError("not a token entry")
        return cls(token, float(expires), float(issued))


def jwt_exp(token: str) -> float | None:
    """The `exp` claim of a JWT, unverified; None when there is none to read.

    Read only to time the cache, never to authorise anything.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return float(exp)


@dataclass(frozen=True, slots=True)
class JwtLifetime:
    """Until when a JWT may be served: `exp` minus `margin`, at most `max_ttl` from now;
    `default_ttl` when `exp` can't be read."""

    margin: float = 60.0
    max_ttl: float = 3600.0
    default_ttl: float = 300.0

    def entry(self, token: str, now: float, expires_in: float | None = None) -> TokenEntry:
        """`expires_in`: the lifetime the vendor stated beside the token, if it did; the
        earlier of it and the JWT's `exp` is the token's end."""
        stated = None if expires_in is None else now + expires_in
        exp = min((t for t in (jwt_exp(token), stated) if t is not None), default=None)
        if exp is None:
            return TokenEntry(token, now + min(self.default_ttl, self.max_ttl), now)
        if exp <= now:
            raise UpstreamBadResponse("the issued token is already expired")
        return TokenEntry(token, min(exp - self.margin, now + self.max_ttl), now)


DEFAULT_LIFETIME: Final = JwtLifetime()


@dataclass(frozen=True, slots=True)
class Backoff:
    """Seconds a shared token is not asked for after a failed issue: `first`, doubled
    with each failure in a row, at most `limit` (the vendor's Retry-After too)."""

    first: float = 1.0
    limit: float = DEFAULT_BREAKER.cooldown  # as long as an open circuit waits, at most


DEFAULT_BACKOFF: Final = Backoff()


@dataclass(slots=True)
class _Failed:
    """The last failed issue of a shared token: what it was, and when to ask again."""

    error: UpstreamError
    until: float
    in_a_row: int


class TokenIssuer(Protocol[I_contra]):
    def cache_key(self, identity: I_contra) -> str:
        """Whose token this request needs, as a key that holds no personal data.

        Unique within the issuer; the cache files it under the configuration's namespace.
        """

    async def issue(self, identity: I_contra) -> TokenEntry:
        """A new token for `identity`, and until when it may be served."""


class TokenCache(Generic[I]):
    def __init__(
        self,
        store: Store,
        issuer: TokenIssuer[I],
        *,
        namespace: str = "",
        margin: float = DEFAULT_LIFETIME.margin,
        lease: float = DEFAULT_LEASE,
        shared: bool = False,
        backoff: Backoff = DEFAULT_BACKOFF,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`shared`: every visitor gets the same token (the provider says so); a failed
        issue is then backed off as `backoff` says."""
        self._store = store
        self._issuer = issuer
        self.shared = shared
        self._backoff = backoff
        self._failed: dict[str, _Failed] = {}  # shared keys only: a handful at most
        self._prefix = f"tok:{namespace}:" if namespace else "tok:"
        self._clock = clock
        self._margin = margin  # only for the warning: the issuer applied it already
        observed = metrics or Metrics()
        self._hit, self._miss = (
            observed.tally.counter(observed.cache.labels("token", o)) for o in ("hit", "miss")
        )
        self._coalescer = Coalescer(
            store, lease=lease, on_join=observed.coalesced.labels("token").inc
        )
        # `widget_proxy_degraded{part="token"}`: only where a shared token can fail everybody.
        self._degraded = observed.degraded.labels("token") if shared else None
        if self._degraded is not None:
            self._degraded.set(0)

    def key(self, identity: I) -> str:
        return self._prefix + self._issuer.cache_key(identity)

    def cached(self, key: str) -> str | None:
        """The token if this process holds a live one; never waits."""
        entry = self._store.peek(key, TokenEntry)
        if entry is None or entry.expires_at <= self._clock():
            return None
        self._hit()
        return entry.token

    async def fetch(self, key: str, identity: I) -> str:
        """The token from the shared store, or one issue shared by every caller."""
        return (await self.entry(key, identity)).token

    async def entry(self, key: str, identity: I) -> TokenEntry:
        """`fetch`, with until when the token is served (for a page that must renew it)."""
        entry = await self._read(key)
        (self._hit if entry is not None else self._miss)()
        if entry is None:
            self._refuse_while_backing_off(key)
            entry = await self._coalescer.load(
                key, lambda: self._read(key), lambda: self._produce(key, identity)
            )
        return entry

    def degraded(self) -> str | None:
        """Why visitors get no token now (a shared token's issue failed), or None."""
        if not self._failed:
            return None
        now = self._clock()
        failed = max(self._failed.values(), key=lambda f: f.until)
        wait = (
            "on the next request"
            if failed.until <= now
            else f"in {math.ceil(failed.until - now)} s"
        )
        return (
            f"the shared token could not be issued ({failed.error.code},"
            f" {failed.in_a_row} in a row); next attempt {wait}"
        )

    def _refuse_while_backing_off(self, key: str) -> None:
        """The last failure again, without asking the vendor, until its back-off passed."""
        failed = self._failed.get(key)
        if failed is None or (wait := failed.until - self._clock()) <= 0:
            return
        seconds = str(max(1, math.ceil(wait)))
        error = failed.error
        raise type(error)(
            f"{error.detail}; the shared token is not asked for again for {seconds} s",
            retry_after=seconds,
        )

    async def _produce(self, key: str, identity: I) -> TokenEntry:
        """`_issue`, with a shared token's failures backed off (once per issue, however
        many requests wait for it)."""
        if not self.shared:
            return await self._issue(key, identity)
        try:
            entry = await self._issue(key, identity)
        except UpstreamError as exc:
            self._back_off(key, exc)
            raise
        if self._failed.pop(key, None) is not None:
            log.warning("the shared token was issued again: the back-off is over")
            self._show()
        return entry

    def _show(self) -> None:
        if self._degraded is not None:
            self._degraded.set(1 if self._failed else 0)

    def _back_off(self, key: str, exc: UpstreamError) -> None:
        last = self._failed.get(key)
        in_a_row = 1 if last is None else last.in_a_row + 1
        wait = self._backoff.first * 2 ** min(in_a_row - 1, 30)
        if exc.retry_after is not None and exc.retry_after.isdigit():
            wait = max(wait, float(exc.retry_after))  # the vendor's (or open circuit's) wait
        wait = min(wait, self._backoff.limit)  # a vendor can't send us away for a year
        self._failed[key] = _Failed(exc, self._clock() + wait, in_a_row)
        exc.retry_after = str(max(1, math.ceil(wait)))  # what every waiting request is told
        self._show()
        log.warning(
            "the shared token's issue failed (%s, %d in a row): not asked for again for %.0f s",
            exc.code,
            in_a_row,
            wait,
        )

    async def _read(self, key: str) -> TokenEntry | None:
        entry = await self._store.get(key, TokenEntry)
        return entry if entry is not None and entry.expires_at > self._clock() else None

    async def _issue(self, key: str, identity: I) -> TokenEntry:
        entry = await self._issuer.issue(identity)
        if len(entry.token) > MAX_TOKEN_LENGTH:
            # A real widget token is a few hundred bytes; megabytes would be kept per
            # user and escaped on every view.
            raise UpstreamBadResponse(
                f"the issued token is {len(entry.token)} characters long"
                f" (at most {MAX_TOKEN_LENGTH})"
            )
        if entry.expires_at <= self._clock():
            # It can't be cached without serving it inside the margin; this request
            # still gets it, fresh, rather than an error.
            log.warning(
                "the issued token lives less than TOKEN_REFRESH_MARGIN (%.0f s): not cached",
                self._margin,
            )
            return entry
        await self._store.set(key, entry)
        return entry
