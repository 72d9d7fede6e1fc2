"""Cache and counter keys that hold no personal data: HMACs under keys derived from
SESSION_SECRET, one derived key per purpose."""

from __future__ import annotations

import hashlib
import hmac


class Hasher:
    """HMAC-SHA256 of a value under one purpose's key: stable, and says nothing.

    It remembers nothing: whoever hashes the same value on every page view keeps its
    answer (a session keeps its keys, `security.identity.Visitor`; the rate limits keep
    each address's, `security.ratelimit`), so no memo holds a second copy.
    """

    def __init__(self, secret: str, purpose: bytes) -> None:
        self._key = hmac.new(secret.encode(), purpose, "sha256").digest()

    def __call__(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()[:32]


class Keys:
    """Hands each component a `Hasher` of its own purpose, all from one secret.

    `scope` (a widget's name, when several share a process and a Redis) puts each
    purpose of its own under it: every key differs from another widget's."""

    def __init__(self, secret: str, *, scope: str = "") -> None:
        self._secret = secret
        self._scope = f"widget {scope}: ".encode() if scope else b""

    def __repr__(self) -> str:
        return "Keys(secret='**********')"

    def hasher(self, purpose: bytes) -> Hasher:
        return Hasher(self._secret, self._scope + purpose)
