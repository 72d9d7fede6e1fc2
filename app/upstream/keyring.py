"""A vendor key and, during a rotation, the next one (`*_KEY_NEXT`).

A call the vendor refuses under the key in use (401/403: `UpstreamRejectedKey`) is
made once more under the other key; if that one is accepted it is the key in use from
then on, and one log line and the `widget_proxy_key_in_use` gauge say so. Nothing
else is retried here: timeouts, 5xx and the rest are the client's business.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..errors import UpstreamRejectedKey
from ..ops.metrics import Metrics
from ..secret import Secret

log = logging.getLogger("widget_proxy.upstream")

T = TypeVar("T")


class KeyRing:
    def __init__(
        self,
        key: Secret,
        next_key: Secret | None = None,
        *,
        names: tuple[str, str] = ("API_KEY", "API_KEY_NEXT"),
        metrics: Metrics | None = None,
    ) -> None:
        self._keys = [(names[0], key)]
        if next_key is not None and next_key != key:
            self._keys.append((names[1], next_key))
        self._gauge = (metrics or Metrics()).key_in_use
        self._in_use = 0
        self._show()

    @classmethod
    def of(
        cls, name: str, key: Secret, next_key: Secret | None, metrics: Metrics | None = None
    ) -> KeyRing:
        """The ring of the setting `name` and its rotation's `{name}_NEXT`."""
        return cls(key, next_key, names=(name, f"{name}_NEXT"), metrics=metrics)

    @property
    def key(self) -> Secret:
        """The key in use."""
        return self._keys[self._in_use][1]

    @property
    def rotating(self) -> bool:
        return len(self._keys) > 1

    async def call(self, attempt: Callable[[Secret], Awaitable[T]]) -> T:
        """`attempt(key)` under the key in use, then once under the other if refused."""
        first = self._in_use
        try:
            return await attempt(self._keys[first][1])
        except UpstreamRejectedKey as refused:
            if not self.rotating:
                raise
            reason = refused.detail
        other = 1 - first
        result = await attempt(self._keys[other][1])  # refused too: that error is raised
        if self._in_use == first:  # concurrent calls switch once, and log it once
            self._in_use = other
            self._show()
            log.warning(
                "%s was refused (%s); %s was accepted and is the key in use from now on",
                self._keys[first][0],
                reason,
                self._keys[other][0],
            )
        return result

    def _show(self) -> None:
        for index, (name, _) in enumerate(self._keys):
            self._gauge.labels(name).set(1 if index == self._in_use else 0)
