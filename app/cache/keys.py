"""Cache and counter keys that hold no personal data: HMACs under keys derived from
SESSION_SECRET, one derived key per purpose."""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache
from typing import Final

MEMO_SIZE: Final = 4096  # the active users, not all


class Hasher:
    """HMAC-SHA256 of a value under one purpose's key: stable, and says nothing.

    The same users and addresses come back on every page view, so recent answers are
    remembered rather than recomputed.
    """

    def __init__(self, secret: str, purpose: bytes) -> None:
        self._key = hmac.new(secret.encode(), purpose, "sha256").digest()
        self._memo = lru_cache(maxsize=MEMO_SIZE)(self._digest)

    def __call__(self, value: str) -> str:
        return self._memo(value)

    def _digest(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()[:32]


class Keys:
    """Hands each component a `Hasher` of its own purpose, all from one secret."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def __repr__(self) -> str:
        return "Keys(secret='**********')"

    def hasher(self, purpose: bytes) -> Hasher:
        return Hasher(self._secret, purpose)
