"""A circuit breaker per upstream origin: fail fast while the vendor is down.

Closed: calls go through; `failures` consecutive failures open it. Open: calls are
refused at once for `cooldown` seconds (the browser gets 503 with Retry-After;
cached pages are still served). Then half-open: one probe goes through and its
outcome closes the circuit or opens it again; other calls are refused meanwhile.

A page request may need two calls at once (signin and page). After `one_caller()`,
calls from that request count as one caller, so the probing request is let through
whole instead of failing on its own second call.
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
    """Consecutive failures that open a circuit, and the seconds it then stays open."""

    failures: int = 5
    cooldown: float = 30.0


DEFAULT_BREAKER: Final = BreakerPolicy()

_caller: ContextVar[object | None] = ContextVar("widget_proxy_breaker_caller", default=None)


def one_caller() -> None:
    """From here on, this task and the tasks it starts are one caller to the breakers."""
    _caller.set(object())


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
        self._failures = 0
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

    def before(self) -> bool:
        """Raise CircuitOpen unless a call may go now; True when this call is the probe."""
        state = self.state
        if state == "closed":
            return False
        if state == "half-open":
            caller = _caller.get()
            if not self._probing:
                self._probing, self._prober = True, caller
                self._changed()
                return True
            if caller is not None and caller is self._prober:
                return False  # another call of the probing request
        assert self._opened_at is not None
        wait = max(1, math.ceil(self._opened_at + self._cooldown - self._clock()))
        raise CircuitOpen(f"circuit to {self.origin} is open", retry_after=str(wait))

    def succeeded(self) -> None:
        if self._opened_at is not None:
            log.warning("circuit to %s closed: the upstream answers again", self.origin)
            self._failures, self._opened_at, self._probing = 0, None, False
            self._changed()
        self._failures = 0

    def failed(self) -> None:
        self._failures += 1
        if self._probing or (self._opened_at is None and self._failures >= self._threshold):
            log.warning(
                "circuit to %s opened after %d consecutive failures; refusing calls for %g s",
                self.origin,
                self._failures,
                self._cooldown,
            )
            self._opened_at, self._probing = self._clock(), False
            self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.state)

    def ended(self) -> None:
        """The probe ended without a verdict (it was cancelled): let another one through."""
        self._probing = False
