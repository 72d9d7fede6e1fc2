"""A circuit breaker per upstream origin: fail fast while the vendor is down.

Closed: calls go through; failed calls from `failures` different callers in a row open
it. Open: calls are refused at once for `cooldown` seconds (the browser gets 503 with
Retry-After; cached pages are still served). Then half-open: one probe goes through
and its outcome closes the circuit or opens it again; other calls are refused meanwhile.

What counts, and why:

- A call counts once, however many attempts its retries took (the client reports
  its outcome when it is over), so one request can't open the circuit by itself.
- Failures are counted per *caller* (`one_caller(key)`: a request, keyed by whose
  token it needs). One user whose signin keeps failing is one failure, not five:
  a fault that follows one caller's input must not refuse everybody else.
- A caller that stands for everybody (`one_caller(key, shared=True)`: a token every
  visitor shares) opens the circuit by its first failed call: that failure is every
  visitor's, and counting it once would keep a failing vendor's circuit closed forever.
- Only the probe's success closes an open circuit. A call that began before the
  circuit opened and succeeds afterwards says nothing about the vendor now.

A page request may need two calls at once (signin and page); they share the
request's caller, so the probing request is let through whole instead of failing on
its own second call.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final, Literal

from ..errors import CircuitOpen

log = logging.getLogger("widget_proxy.upstream")

State = Literal["closed", "open", "half-open"]


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """Failed callers in a row that open a circuit, and the seconds it then stays open."""

    failures: int = 5
    cooldown: float = 30.0


DEFAULT_BREAKER: Final = BreakerPolicy()

_caller: ContextVar[object | None] = ContextVar("widget_proxy_breaker_caller", default=None)


class Everyone:
    """A caller on behalf of every visitor (a shared token): its failure is theirs.

    A new one per request, so only the probing request's own calls pass a half-open
    circuit, as with any other caller."""

    __slots__ = ()


def one_caller(key: str | None = None, *, shared: bool = False) -> None:
    """From here on, this task and the tasks it starts are one caller to the breakers.

    `key` names the caller across requests (whose token it needs), so that the same
    user failing again and again counts once; without it, the caller is this task alone.
    `shared`: the key is every visitor's, so a failed call opens the circuit at once.
    """
    _caller.set(Everyone() if shared else key if key is not None else object())


@dataclass(frozen=True, slots=True, eq=False)
class Ticket:
    """One call's pass through the breaker: who asked, when, and whether it probes."""

    caller: object
    generation: int  # how many times the circuit had opened when the call began
    probe: bool


class Breaker:
    def __init__(
        self,
        origin: str,
        failures: int,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[State], object] | None = None,
    ) -> None:
        self.origin = origin
        self._threshold = failures
        self._cooldown = cooldown
        self._clock = clock
        self._failing: set[object] = set()  # callers whose calls failed since the last success
        self._generation = 0
        self._opened_at: float | None = None
        self._probing = False
        self._prober: object | None = None
        self._on_change = on_change

    @property
    def state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self._probing or self._clock() - self._opened_at >= self._cooldown:
            return "half-open"
        return "open"

    def before(self) -> Ticket:
        """A ticket for a call that may go now; CircuitOpen if it may not."""
        caller = _caller.get()
        if caller is None:
            caller = object()
        state = self.state
        if state == "closed":
            return Ticket(caller, self._generation, probe=False)
        if state == "half-open":
            if not self._probing:
                self._probing, self._prober = True, caller
                self._changed()
                return Ticket(caller, self._generation, probe=True)
            if caller is self._prober:
                return Ticket(caller, self._generation, probe=False)  # the probe's other call
        raise CircuitOpen(f"circuit to {self.origin} is open", retry_after=self._wait())

    def admits(self, ticket: Ticket) -> bool:
        """Whether a call that holds `ticket` may make another attempt now."""
        if ticket.probe or self.state == "closed":
            return True
        return self._probing and ticket.caller is self._prober

    def succeeded(self, ticket: Ticket) -> None:
        if self._opened_at is None:
            if ticket.generation == self._generation:
                self._failing.clear()
            return
        if not ticket.probe:
            return  # begun before the circuit opened, or the probe's other call
        log.warning("circuit to %s closed: the upstream answers again", self.origin)
        self._failing.clear()
        self._opened_at, self._probing, self._prober = None, False, None
        self._changed()

    def failed(self, ticket: Ticket) -> None:
        if ticket.probe:
            self._open()
            return
        if self._opened_at is not None or ticket.generation != self._generation:
            return  # the circuit is open already, or opened since this call began
        everyone = isinstance(ticket.caller, Everyone)
        self._failing.add(ticket.caller)
        if everyone or len(self._failing) >= self._threshold:
            self._open(everyone=everyone)

    def ended(self, ticket: Ticket) -> None:
        """The call ended without a verdict (it was cancelled): let another probe through."""
        if ticket.probe and self._probing:
            self._probing, self._prober = False, None

    def _open(self, *, everyone: bool = False) -> None:
        why = (
            "a call for every visitor (a shared token) failed"
            if everyone
            else f"failed calls from {max(len(self._failing), 1)} callers in a row"
        )
        log.warning(
            "circuit to %s opened after %s; refusing calls for %g s",
            self.origin,
            why,
            self._cooldown,
        )
        self._generation += 1
        self._failing.clear()
        self._opened_at, self._probing, self._prober = self._clock(), False, None
        self._changed()

    def _wait(self) -> str:
        assert self._opened_at is not None
        return str(max(1, math.ceil(self._opened_at + self._cooldown - self._clock())))

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.state)
