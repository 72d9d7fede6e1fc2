"""Token cache: lifetimes from `exp`, keys without emails, one signin per user."""

from __future__ import annotations

import asyncio
import base64
import json

import jwt
import pytest

from tests.support import VALID, Clock
from widget_proxy.cache import Keys, MemoryStore, TokenCache, TokenEntry
from widget_proxy.cache.tokens import JwtLifetime, jwt_exp
from widget_proxy.errors import UpstreamBadResponse, UpstreamTimeout
from widget_proxy.providers.returningai.tokens import ReturningAITokens
from widget_proxy.security.identity import Identity

pytestmark = pytest.mark.anyio


def token(exp: float | None, **claims: object) -> str:
    payload = {"sub": "ann", **claims}
    if exp is not None:
        payload["exp"] = exp
    return jwt.encode(payload, "k" * 32, algorithm="HS256")


def unsigned(payload: object) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJub25lIn0.{body}.sig"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (token(1_700_000_000), 1_700_000_000.0),
        (token(1_700_000_000.5), 1_700_000_000.5),
        (token(None), None),
        (unsigned({"exp": "tomorrow"}), None),
        (unsigned({"exp": True}), None),
        (unsigned(["exp", 1]), None),
        ("not-a-jwt", None),
        ("a.%%%.c", None),
        ("a.bm90IGpzb24.c", None),  # "not json"
    ],
)
def test_jwt_exp(value: str, expected: float | None) -> None:
    assert jwt_exp(value) == expected


class Vendor:
    def __init__(self, clock: Clock, lifetime: float | None = 600) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.signins = 0
        self.fail = False

    async def signin(self, email: str) -> str:
        self.signins += 1
        await asyncio.sleep(0.01)
        if self.fail:
            raise UpstreamTimeout("signin timed out")
        exp = None if self.lifetime is None else self.clock.now + self.lifetime
        return token(exp, email=email)


def cache(
    clock: Clock,
    vendor: Vendor,
    *,
    lifetime: JwtLifetime = JwtLifetime(),  # noqa: B008 - frozen value
    secret: str = VALID["SESSION_SECRET"],
) -> tuple[TokenCache[Identity], MemoryStore]:
    store = MemoryStore(100, clock=clock)
    issuer = ReturningAITokens(
        vendor,  # type: ignore[arg-type]  # only its signin is called
        keys=Keys(secret),
        community_id=VALID["WIDGET_COMMUNITY_ID"],
        lifetime=lifetime,
        clock=clock,
    )
    return TokenCache(store, issuer, margin=lifetime.margin, clock=clock), store


async def get(tokens: TokenCache[Identity], email: str = "ann@example.com") -> str:
    key = tokens.key(Identity(email))
    return tokens.cached(key) or await tokens.fetch(key, Identity(email))


@pytest.mark.parametrize(
    ("lifetime", "policy", "cached_for"),
    [
        (600, JwtLifetime(), 540),  # exp minus the 60 s margin
        (7200, JwtLifetime(), 3600),  # capped by TOKEN_MAX_TTL
        (None, JwtLifetime(), 300),  # no exp: TOKEN_DEFAULT_TTL
        (600, JwtLifetime(margin=10), 590),  # TOKEN_REFRESH_MARGIN=10
        (None, JwtLifetime(default_ttl=900, max_ttl=120), 120),  # capped by TOKEN_MAX_TTL
    ],
)
async def test_lifetime(lifetime: float | None, policy: JwtLifetime, cached_for: float) -> None:
    clock = Clock()
    vendor = Vendor(clock, lifetime)
    tokens, store = cache(clock, vendor, lifetime=policy)

    first = await get(tokens)
    entry = store.peek(tokens.key(Identity("ann@example.com")), TokenEntry)

    assert entry is not None
    assert entry.expires_at == pytest.approx(clock.now + cached_for)
    clock.now += cached_for - 1
    assert await get(tokens) == first
    assert vendor.signins == 1
    clock.now += 1  # at the margin: never served, a new signin instead
    await get(tokens)
    assert vendor.signins == 2


async def test_a_token_shorter_than_the_margin_is_served_once_but_not_cached() -> None:
    clock = Clock()
    vendor = Vendor(clock, lifetime=30)
    tokens, store = cache(clock, vendor)

    await get(tokens)
    await get(tokens)

    assert vendor.signins == 2
    assert len(store) == 0


async def test_an_already_expired_token_is_an_upstream_error() -> None:
    clock = Clock()
    vendor = Vendor(clock, lifetime=-5)
    tokens, _ = cache(clock, vendor)

    with pytest.raises(UpstreamBadResponse, match="already expired"):
        await get(tokens)


async def test_failed_signins_are_not_cached() -> None:
    clock = Clock()
    vendor = Vendor(clock)
    vendor.fail = True
    tokens, store = cache(clock, vendor)

    for _ in range(3):
        with pytest.raises(UpstreamTimeout):
            await get(tokens)

    assert vendor.signins == 3
    assert len(store) == 0
    vendor.fail = False
    assert await get(tokens)


async def test_concurrent_misses_sign_in_once() -> None:
    clock = Clock()
    vendor = Vendor(clock)
    tokens, _ = cache(clock, vendor)

    results = await asyncio.gather(*(get(tokens) for _ in range(200)))

    assert len(set(results)) == 1
    assert vendor.signins == 1


async def test_each_user_has_their_own_token() -> None:
    clock = Clock()
    vendor = Vendor(clock)
    tokens, _ = cache(clock, vendor)

    emails = [f"user{i}@example.com" for i in range(20)]
    results = await asyncio.gather(*(get(tokens, e) for e in emails * 5))

    for email, value in zip(emails * 5, results, strict=True):
        assert jwt.decode(value, options={"verify_signature": False})["email"] == email
    assert vendor.signins == 20


def test_keys_hold_no_email_and_depend_on_the_secret() -> None:
    clock, vendor = Clock(), Vendor(Clock())
    tokens, _ = cache(clock, vendor)
    other, _ = cache(clock, vendor, secret="t" * 32)

    key = tokens.key(Identity("ann@example.com"))

    assert "ann" not in key
    assert "example" not in key
    assert key.startswith("tok:community-1:")
    assert key != tokens.key(Identity("bob@example.com"))
    assert key != other.key(Identity("ann@example.com"))
    assert key == tokens.key(Identity("ann@example.com"))


@pytest.mark.parametrize(
    "token", ["eyJ.a.b", "with spaces in it", "line\nbreaks\nin it", "  ", "é\u2028"]
)
def test_a_token_entry_travels_as_bytes_unchanged(token: str) -> None:
    entry = TokenEntry(token, 1_000_123.5, 1_000_000.25)

    assert TokenEntry.from_bytes(entry.to_bytes()) == entry


@pytest.mark.parametrize("data", [b"", b"1.0\n2.0\n", b"1.0\n2.0", b"x\ny\nz"])
def test_a_damaged_token_entry_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):
        TokenEntry.from_bytes(data)


@pytest.mark.parametrize(
    ("exp_in", "stated", "served_for"),
    [
        (900, None, 840),  # the JWT's exp, minus the margin
        (900, 300, 240),  # the vendor says it ends sooner than the JWT: the earlier end
        (300, 900, 240),  # the JWT ends sooner than the vendor says: the earlier end
        (None, 600, 540),  # not a JWT, but a stated lifetime
        (None, None, 300),  # neither: TOKEN_DEFAULT_TTL
        (9000, 9000, 3600),  # never longer than TOKEN_MAX_TTL
    ],
)
def test_a_tokens_end_is_the_earlier_of_its_exp_and_its_stated_lifetime(
    exp_in: int | None, stated: float | None, served_for: float
) -> None:
    now = 1_000_000.0
    token = "opaque-token" if exp_in is None else jwt.encode({"exp": now + exp_in}, "k" * 32)

    entry = JwtLifetime(margin=60).entry(token, now, stated)

    assert entry.expires_at - now == served_for
