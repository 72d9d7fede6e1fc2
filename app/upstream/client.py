"""The one HTTP client to the vendors: deadlines, retries, a breaker per origin.

Every transport or protocol failure becomes one of the `UpstreamError`s in
`errors`; the upstream's body is never copied into an error, so it can't reach
a browser or a log line.

One call (`HttpClient.call`) is: at most 1 + `UPSTREAM_RETRIES` attempts, all within
`UPSTREAM_DEADLINE`. Connection errors, timeouts, 502, 503 and 504 are retried after
an exponential backoff with full jitter; a 429 or 503 with `Retry-After` is waited
out only if that fits in the deadline. The first attempt asks the origin's circuit
breaker for a pass, a retry goes only while the breaker still admits it, and the
call's outcome is reported to the breaker once, however many attempts it took, and
logged as one line (`widget_proxy.upstream`: vendor, operation, method, the URL's path
only, status, ms, attempts). What an answer means (status, charset, redirect,
Retry-After) is `answers.py`'s.

(Over 300 lines: one call's whole life, from the pool slot and the breaker's pass to
the last retry and the body's limit, reads best in one place.)
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import httpx2

from ..__version__ import __version__
from ..errors import (
    CircuitOpen,
    UpstreamBadResponse,
    UpstreamBadStatus,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from ..ops.metrics import CIRCUIT_STATES, Metrics
from .answers import check_status, decode, origin_of, same_origin_target, too_large
from .breaker import DEFAULT_BREAKER, Breaker, BreakerPolicy, Ticket

log = logging.getLogger("widget_proxy.upstream")

USER_AGENT: Final = f"widget-proxy/{__version__}"
BACKOFF_BASE: Final = 0.1  # seconds before the first retry, at most (full jitter)
BACKOFF_CAP: Final = 2.0
MAX_REDIRECTS: Final = 3
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds to connect, to wait for each read (and write), to wait for a free connection."""

    connect: float = 2.0
    read: float = 5.0
    pool: float = 2.0


@dataclass(frozen=True, slots=True)
class Limits:
    """Connections kept open to each origin, and the largest body read (decoded bytes)."""

    max_connections: int = 100
    max_bytes: int = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Retries:
    """Retries after a retryable failure, all attempts within `deadline` seconds."""

    retries: int = 2
    deadline: float = 8.0


DEFAULT_TIMEOUTS: Final = Timeouts()
DEFAULT_LIMITS: Final = Limits()
DEFAULT_RETRIES: Final = Retries()


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: httpx2.Headers
    text: str
    url: str  # after same-origin redirects


@dataclass(slots=True)
class Tried:
    """How far one call got: its attempts so far, and the last HTTP status it saw."""

    attempts: int = 0
    status: int | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """One logical upstream call, as asked for; each attempt replays it."""

    kind: str  # names the call in errors and logs: "signin", "page"
    method: str
    url: str
    headers: dict[str, str]
    params: dict[str, str] | None
    key_statuses: frozenset[int]  # statuses that mean our credentials were refused
    content: bytes | None = None  # a request body (JSON, already encoded)


class HttpClient:
    def __init__(
        self,
        *,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        limits: Limits = DEFAULT_LIMITS,
        retries: Retries = DEFAULT_RETRIES,
        breaker: BreakerPolicy = DEFAULT_BREAKER,
        metrics: Metrics | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        vendor: str = "",
    ) -> None:
        """`vendor` names the calls' vendor in their log lines; `transport` replaces the
        network under the client (narrow unit tests only)."""
        self._metrics = metrics or Metrics()
        self._vendor = vendor
        self._max_bytes = limits.max_bytes
        self._deadline = retries.deadline
        self._retries = retries.retries
        self._breaker = breaker
        self._max_connections = limits.max_connections
        self._pool_timeout = timeouts.pool
        self.breakers: dict[str, Breaker] = {}
        self._slots: dict[str, asyncio.Semaphore] = {}
        # The client binds to no event loop until first used, so an app mounted
        # inside another (whose lifespan never reaches us) still works.
        self._client = httpx2.AsyncClient(
            timeout=httpx2.Timeout(
                connect=timeouts.connect,
                read=timeouts.read,
                write=timeouts.read,
                pool=timeouts.pool,
            ),
            limits=httpx2.Limits(
                max_connections=limits.max_connections,
                max_keepalive_connections=limits.max_connections,
            ),
            follow_redirects=False,
            headers={"user-agent": USER_AGENT},
            transport=transport,
        )

    def breaker(self, url: str) -> Breaker:
        origin = origin_of(url)
        breaker = self.breakers.get(origin)
        if breaker is None:
            gauge = self._metrics.circuit.labels(origin)
            breaker = Breaker(
                origin,
                self._breaker.failures,
                self._breaker.cooldown,
                on_change=lambda state: gauge.set(CIRCUIT_STATES[state]),
            )
            gauge.set(CIRCUIT_STATES["closed"])
            self.breakers[origin] = breaker
        return breaker

    async def call(
        self,
        kind: str,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        params: dict[str, str] | None = None,
        key_statuses: frozenset[int] = frozenset(),
        content: bytes | None = None,
    ) -> Reply:
        """One upstream call with its retries, within the deadline.

        `kind` names the call in errors and logs ("signin", "page"); a status in
        `key_statuses` means the vendor refused our credentials (never retried).
        """
        started = time.monotonic()
        breaker = self.breaker(url)
        ticket: list[Ticket] = []  # the breaker's pass, once a connection was free
        call = Call(kind, method, url, headers, params, key_statuses, content)
        tried = Tried()
        try:
            async with asyncio.timeout(self._deadline):
                reply = await self._attempts(call, breaker, ticket, tried)
        except TimeoutError:
            error: UpstreamError = UpstreamTimeout(
                f"{kind} missed the {self._deadline:g} s deadline", unhealthy=True
            )
            self._settle(breaker, ticket, error)
            self._observe(call, started, tried, error)
            raise error from None
        except UpstreamError as exc:
            self._settle(breaker, ticket, exc)
            self._observe(call, started, tried, exc)
            raise
        except BaseException:  # cancelled: the caller went away, or a sibling call failed
            if ticket:
                breaker.ended(ticket[0])
            raise
        self._settle(breaker, ticket, None)
        self._observe(call, started, tried, None)
        return reply

    @staticmethod
    def _settle(breaker: Breaker, ticket: list[Ticket], exc: UpstreamError | None) -> None:
        """Tell the breaker how the whole call fared: once, however many attempts it took."""
        if not ticket:
            return  # refused before it began (circuit open, no free connection)
        # Any sane HTTP answer, even a refusal, shows the upstream is up.
        if exc is not None and exc.unhealthy:
            breaker.failed(ticket[0])
        else:
            breaker.succeeded(ticket[0])

    def on_response(self, hook: Callable[[httpx2.Response], Awaitable[None]]) -> None:
        """Also tell `hook` about every upstream answer (`widget-proxy check` reports them)."""
        self._client.event_hooks["response"].append(hook)

    async def aclose(self) -> None:
        await self._client.aclose()

    def _observe(self, call: Call, started: float, tried: Tried, exc: UpstreamError | None) -> None:
        """One log line and the metrics of one call, however many attempts it took."""
        elapsed = time.monotonic() - started
        kind = call.kind
        self._metrics.upstream_seconds.labels(kind).observe(elapsed)
        self._metrics.upstream_calls.labels(kind, exc.code if exc else "ok").inc()
        # The URL's path only: a query may carry a key, and never reaches a log.
        fields = {
            "vendor": self._vendor or "-", "operation": kind, "method": call.method,
            "url_path": urlsplit(call.url).path or "/", "status": tried.status,
            "ms": round(elapsed * 1000, 1), "attempt": tried.attempts,
        }  # fmt: skip
        called = f"upstream {fields['vendor']} {kind} {call.method} {fields['url_path']}"
        ms, attempt = elapsed * 1000, tried.attempts
        if exc is None:
            log.info("%s answered %s in %.0f ms (attempt %d)",
                     called, tried.status, ms, attempt, extra=fields)  # fmt: skip
        else:
            log.warning("%s failed after %.0f ms (attempt %d): %s",
                        called, ms, attempt, exc.detail, extra=fields)  # fmt: skip

    async def _attempts(
        self, call: Call, breaker: Breaker, ticket: list[Ticket], tried: Tried
    ) -> Reply:
        """The call's attempts; `ticket` receives the breaker's pass once one is given,
        `tried` how far they got."""
        deadline = time.monotonic() + self._deadline
        attempt = 0
        last: UpstreamError | None = None
        while True:
            try:
                async with self._slot(call):
                    # Asked only once a connection is free: calls queued behind a hung
                    # upstream then fail fast as soon as the breaker opens.
                    if not ticket:
                        ticket.append(breaker.before())
                    elif last is not None and not breaker.admits(ticket[0]):
                        # Opened by others meanwhile: answer with this call's own failure.
                        last.detail += f" (after {attempt} attempts; then the circuit opened)"
                        raise last
                    tried.attempts += 1
                    reply = await self._once(call, tried)
            except UpstreamError as exc:
                if exc is last or isinstance(exc, CircuitOpen):
                    raise
                delay = self._retry_delay(exc, attempt, deadline)
                if delay is None:
                    if attempt:
                        exc.detail += f" (after {attempt + 1} attempts)"
                    raise
                last = exc
                attempt += 1
                await asyncio.sleep(delay)
            else:
                return reply

    @asynccontextmanager
    async def _slot(self, call: Call) -> AsyncIterator[None]:
        """One of the origin's connection slots, waited for up to the pool timeout."""
        origin = origin_of(call.url)
        slots = self._slots.get(origin)
        if slots is None:
            slots = self._slots[origin] = asyncio.Semaphore(self._max_connections)
        try:
            async with asyncio.timeout(self._pool_timeout):
                await slots.acquire()
        except TimeoutError:
            raise UpstreamTimeout(
                f"{call.kind} found no free connection within {self._pool_timeout:g} s"
            ) from None
        try:
            yield
        finally:
            slots.release()

    def _retry_delay(self, exc: UpstreamError, attempt: int, deadline: float) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        if not exc.retryable or attempt >= self._retries:
            return None
        if exc.retry_after is not None:
            delay = float(exc.retry_after)
        else:
            delay = random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))  # noqa: S311
        return delay if time.monotonic() + delay < deadline else None

    async def _once(self, call: Call, tried: Tried) -> Reply:
        kind, method, url, headers, params = (
            call.kind, call.method, call.url, call.headers, call.params
        )  # fmt: skip
        conditional = "if-none-match" in headers or "if-modified-since" in headers
        try:
            for _ in range(MAX_REDIRECTS + 1):
                async with self._client.stream(
                    method, url, headers=headers, params=params, content=call.content
                ) as response:
                    status = tried.status = response.status_code
                    if conditional and status == 304:
                        return Reply(304, response.headers, "", url)
                    if method == "GET" and status in _REDIRECTS:
                        url, params = same_origin_target(kind, url, response), None
                        continue
                    check_status(kind, response, call.key_statuses)
                    body = await self._body(kind, response)
                    text = decode(body, response.charset_encoding)
                    return Reply(status, response.headers, text, str(response.url))
            raise UpstreamBadStatus(f"{kind} redirected more than {MAX_REDIRECTS} times")
        except httpx2.TimeoutException:
            raise UpstreamTimeout(f"{kind} timed out", retryable=True, unhealthy=True) from None
        except httpx2.DecodingError:
            raise UpstreamBadResponse(f"{kind} body could not be decoded") from None
        except httpx2.TransportError as exc:
            raise UpstreamUnavailable(
                f"{kind} connection failed ({type(exc).__name__})", retryable=True, unhealthy=True
            ) from None

    async def _body(self, kind: str, response: httpx2.Response) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            raise too_large(kind, self._max_bytes)
        body = bytearray()
        # Decoded bytes are counted, so a small compressed bomb is caught too.
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > self._max_bytes:
                raise too_large(kind, self._max_bytes)
        return bytes(body)
