"""What a vendor's steps in `widget-proxy check` are given: the kit, as protocols.

The command (`check/`) sits above the providers and implements this kit
(`check.checklist.Steps`); a vendor's `check.py` is written against these protocols
only, so the providers never reach up to the command that runs them. A step that
fails raises `errors.StepFailed`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from ..delivery.page import Color
from ..secret import Secret
from ..upstream.client import HttpClient

T = TypeVar("T")


class Output(Protocol):
    """The checklist the merchant reads: one line per step."""

    def ok(self, step: str, text: str) -> None: ...

    def warn(self, step: str, text: str) -> None: ...

    def fingerprint(self, value: str) -> str:
        """Enough of a secret or token to recognise it, never enough to use it."""


class Status(Protocol):
    @property
    def text(self) -> str:
        """The HTTP status of the client's latest answer, for a checklist line."""


class Steps(Protocol):
    """The checklist, the proxy's own client, the core settings the shared steps judge
    by, and the steps every vendor shares."""

    @property
    def out(self) -> Output: ...

    @property
    def http(self) -> HttpClient: ...

    @property
    def status(self) -> Status: ...

    @property
    def color(self) -> Color:
        """WIDGET_COLOR: the page a first view would fetch."""

    @property
    def margin(self) -> float:
        """TOKEN_REFRESH_MARGIN."""

    @property
    def origin(self) -> str | None:
        """`check --origin`: the origin of the pages that show the widget, sent as `Origin`
        to a vendor API that judges it; None if not given."""

    async def timed(self, step: str, call: Awaitable[T], rejected: str = "") -> tuple[T, int]:
        """`call`'s result and milliseconds; an upstream error becomes `StepFailed`."""

    async def connect(self, url: str) -> None:
        """Resolve the URL's host and connect to it (TLS too for https), one line."""

    async def each_key(
        self,
        step: str,
        keys: Sequence[tuple[str, Secret | None]],
        attempt: Callable[[Secret], Awaitable[T]],
        describe: Callable[[T, int], str],
        rejected: str = "",
    ) -> T:
        """`attempt` under each key that is set (a rotation's next key too), one line each."""

    def token_exp(self, token: str) -> None:
        """The token's lifetime as the token cache will judge it, one line."""

    async def script(self, url: str, step: str = "script") -> None:
        """The vendor's loader script, fetched as a browser will need it, one line."""

    async def proven(
        self,
        step: str,
        url: str,
        call: Callable[[], Awaitable[object]],
        *,
        key: str,
        accepted: str,
        refused: str,
        hint: str,
    ) -> None:
        """What was signed here with the setting `key`, judged by the vendor's widget API
        at `url` through `call`: ✔ accepted (2xx), ✘ refused (401, `StepFailed`), or ⚠
        `key` unverified (unreachable, any other answer). One line, after the connect's."""


def utc(timestamp: float) -> str:
    """A timestamp as the checklist shows it."""
    try:
        return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"{timestamp:g} (not a date)"
