"""Cache and counter keys that hold no personal data: HMACs under keys derived from
SESSION_SECRET, one derived key per purpose."""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from ..memo import BoundedMemo

MEMO_SIZE: Final = 4096  # the active users, not all
MEMO_BYTES: Final = 2 * 1024 * 1024  # ~500 bytes an entry of an email or address
MEMO_ENTRY_BYTES: Final = 4096  # a longer value is hashed each time, never remembered


class Hasher:
    """HMAC-SHA256 of a value under one purpose's key: stable, and says nothing.

    The same users and addresses come back on every page view, so recent answers are
    remembered rather than recomputed, in a memo bounded by entries and by bytes (the
    values hashed may come from a request).
    """

    def __init__(self, secret: str, purpose: bytes) -> None:
        self._key = hmac.new(secret.encode(), purpose, "sha256").digest()
        self.memo: BoundedMemo[str, str] = BoundedMemo(
            max_entries=MEMO_SIZE, max_bytes=MEMO_BYTES, max_entry_bytes=MEMO_ENTRY_BYTES
        )

    def __call__(self, value: str) -> str:
        return self.memo.get_or_compute(value, self._digest)

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
