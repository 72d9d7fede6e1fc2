"""Token cache: lifetimes from `exp`, keys without emails, one signin per user."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import jwt
import pytest

from tests.support import VALID, Clock
from tests.support.metrics import samples
from widget_proxy.cache import Keys, MemoryStore, TokenCache, TokenEntry
from widget_proxy.cache.tokens import MAX_TOKEN_LENGTH, Backoff, JwtLifetime, jwt_exp
from widget_proxy.errors import (
    UpstreamBadResponse,
    UpstreamBadStatus,
    UpstreamBusy,
    UpstreamError,
    UpstreamRejectedKey,
    UpstreamTimeout,
)
from widget_proxy.ops.metrics import Metrics
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


def events(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(f"widget_proxy_{name}_total", labels) or 0.0


def counted_cache(
    clock: Clock, vendor: Vendor, store: MemoryStore, **kw: Any
) -> tuple[TokenCache[Identity], Metrics]:
    """A token cache on `store` (another process's, when two share one), with its metrics."""
    metrics = Metrics()
    issuer = ReturningAITokens(
        vendor,  # type: ignore[arg-type]  # only its signin is called
        keys=Keys(VALID["SESSION_SECRET"]),
        community_id=VALID["WIDGET_COMMUNITY_ID"],
        clock=clock,
    )
    return TokenCache(store, issuer, metrics=metrics, clock=clock, **kw), metrics


async def test_both_paths_serve_a_live_token_until_its_end_and_count_hits_and_misses() -> None:
    clock = Clock()
    vendor = Vendor(clock)  # 600 s: served for 540
    tokens, metrics = counted_cache(clock, vendor, MemoryStore(100, clock=clock))
    key = tokens.key(Identity("ann@example.com"))

    assert tokens.cached(key) is None  # nothing yet, and no waiting for it
    first = await tokens.fetch(key, Identity("ann@example.com"))
    clock.now += 539
    assert tokens.cached(key) == first
    assert await tokens.fetch(key, Identity("ann@example.com")) == first
    assert vendor.signins == 1
    assert events(metrics, "cache_events", cache="token", outcome="hit") == 2
    assert events(metrics, "cache_events", cache="token", outcome="miss") == 1

    clock.now += 1  # its end: neither path serves it
    assert tokens.cached(key) is None
    assert await tokens.fetch(key, Identity("ann@example.com")) != first
    assert vendor.signins == 2
    assert events(metrics, "cache_events", cache="token", outcome="miss") == 2


async def test_two_processes_on_one_store_sign_in_once() -> None:
    clock = Clock()
    vendor = Vendor(clock)
    store = MemoryStore(100, clock=clock)
    one, metrics = counted_cache(clock, vendor, store)
    other, _ = counted_cache(clock, vendor, store)
    key = one.key(Identity("ann@example.com"))

    results = await asyncio.gather(
        *(cache.fetch(key, Identity("ann@example.com")) for cache in (one, other, one, one))
    )

    assert len(set(results)) == 1
    assert vendor.signins == 1
    assert events(metrics, "coalesced_waiters", cache="token") == 2  # one's two joiners


async def test_a_lock_is_held_for_the_lease_given() -> None:
    clock = Clock()
    vendor = Vendor(clock)
    store = MemoryStore(100, clock=clock)
    tokens, _ = counted_cache(clock, vendor, store, lease=3.0)
    key = tokens.key(Identity("ann@example.com"))
    vendor.fail = True
    released = store.release

    async def dies_holding_it(key: str, owner: str) -> None:  # the process died mid-issue
        store.release = released  # type: ignore[method-assign]

    store.release = dies_holding_it  # type: ignore[method-assign]
    with pytest.raises(UpstreamTimeout):
        await tokens.fetch(key, Identity("ann@example.com"))

    clock.now += 2.9
    assert await store.acquire(key, 1.0) is None  # still its lock
    clock.now += 0.1
    assert await store.acquire(key, 1.0) is not None  # its lease is over


@pytest.mark.parametrize(("namespace", "prefix"), [("", "tok:"), ("cfg-2", "tok:cfg-2:")])
def test_the_namespace_keeps_configurations_apart(namespace: str, prefix: str) -> None:
    clock = Clock()
    plain, _ = counted_cache(clock, Vendor(clock), MemoryStore(100, clock=clock))
    spaced, _ = counted_cache(
        clock, Vendor(clock), MemoryStore(100, clock=clock), namespace=namespace
    )

    key = spaced.key(Identity("ann@example.com"))

    assert key == prefix + plain.key(Identity("ann@example.com")).removeprefix("tok:")


@pytest.mark.parametrize(
    ("length", "served"), [(MAX_TOKEN_LENGTH, True), (MAX_TOKEN_LENGTH + 1, False)]
)
async def test_a_token_longer_than_8192_characters_is_refused(length: int, served: bool) -> None:
    clock = Clock()

    class Long:
        def cache_key(self, identity: Identity) -> str:
            return "ann"

        async def issue(self, identity: Identity) -> TokenEntry:
            return TokenEntry("t" * length, clock.now + 300, clock.now)

    tokens = TokenCache(MemoryStore(100, clock=clock), Long(), clock=clock)

    if served:
        assert len(await tokens.fetch("tok:ann", Identity("ann@example.com"))) == length
        return
    with pytest.raises(UpstreamBadResponse) as caught:
        await tokens.fetch("tok:ann", Identity("ann@example.com"))
    assert caught.value.detail == f"the issued token is {length} characters long (at most 8192)"


async def test_a_token_that_ends_within_the_margin_is_served_not_cached_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    vendor = Vendor(clock, lifetime=60)  # exp exactly at the margin: ends now
    store = MemoryStore(100, clock=clock)
    tokens, _ = counted_cache(clock, vendor, store)  # the default margin, 60 s

    with caplog.at_level("WARNING", logger="widget_proxy.cache"):
        assert await get(tokens)

    assert len(store) == 0
    assert [r.getMessage() for r in caplog.records if r.name == "widget_proxy.cache"] == [
        "the issued token lives less than TOKEN_REFRESH_MARGIN (60 s): not cached"
    ]


@pytest.mark.parametrize("lifetime", [0, -5])
async def test_a_token_that_has_ended_is_an_upstream_error(lifetime: int) -> None:
    clock = Clock()
    tokens, _ = cache(clock, Vendor(clock, lifetime=lifetime))

    with pytest.raises(UpstreamBadResponse, match=r"^the issued token is already expired$"):
        await get(tokens)


@pytest.mark.parametrize("exp_in", [None, 900])
def test_an_issued_entry_travels_through_a_shared_store(exp_in: int | None) -> None:
    now = 1_000_000.0
    value = "opaque-token" if exp_in is None else jwt.encode({"exp": now + exp_in}, "k" * 32)
    entry = JwtLifetime().entry(value, now)

    assert TokenEntry.from_bytes(entry.to_bytes()) == entry
    assert entry.issued_at == now


async def test_a_token_is_never_served_past_its_end_whatever_the_stores_clock() -> None:
    clock = Clock()
    behind = Clock()
    vendor = Vendor(clock)
    # The shared store keeps entries by its own clock (Redis's), here 5 s behind ours.
    store = MemoryStore(100, clock=lambda: behind.now)
    tokens, _ = counted_cache(clock, vendor, store)
    key = tokens.key(Identity("ann@example.com"))
    first = await tokens.fetch(key, Identity("ann@example.com"))

    clock.now += 540  # the token's end by our clock
    behind.now = clock.now - 5

    assert tokens.cached(key) is None
    assert await tokens.fetch(key, Identity("ann@example.com")) != first
    assert vendor.signins == 2


# --- a token every visitor shares: its failed issue is backed off -------------------


class Shop:
    """An issuer of one token for every visitor, failing while `error` is set."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.issues = 0
        self.error: UpstreamError | None = None
        self.asked_for: set[Identity] = set()

    def cache_key(self, identity: Identity) -> str:
        return "the-shop"

    async def issue(self, identity: Identity) -> TokenEntry:
        self.issues += 1
        self.asked_for.add(identity)
        await asyncio.sleep(0.01)  # concurrent requests find it under way
        if self.error is not None:
            raise self.error
        return TokenEntry(f"shop-token-{self.issues}", self.clock.now + 3600, self.clock.now)


def shop_cache(clock: Clock, shop: Shop) -> tuple[TokenCache[Identity], Metrics]:
    metrics = Metrics()
    store = MemoryStore(100, clock=clock)
    backoff = Backoff(first=1, limit=5)
    tokens = TokenCache(store, shop, shared=True, backoff=backoff, metrics=metrics, clock=clock)
    return tokens, metrics


async def failing(tokens: TokenCache[Identity], error: type[UpstreamError]) -> str:
    """The Retry-After of the failure a visitor gets."""
    with pytest.raises(error) as caught:
        await get(tokens, "")  # anonymous: it is the same token for everybody
    assert caught.value.retry_after is not None
    return caught.value.retry_after


def degraded_gauge(metrics: Metrics) -> float:
    found = samples(metrics.exposition().decode())
    return found.get(("widget_proxy_degraded", (("part", "token"),)), -1.0)


async def test_a_shared_tokens_failed_issue_is_asked_again_once_per_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    shop = Shop(clock)
    tokens, metrics = shop_cache(clock, shop)
    assert await get(tokens, "") == "shop-token-1"  # while all is well: nothing backed off
    assert tokens.degraded() is None
    assert degraded_gauge(metrics) == 0
    clock.now += 3600  # it ends; the next issue fails
    shop.error = UpstreamRejectedKey("the upstream rejected the API key (401)")
    with caplog.at_level("WARNING", logger="widget_proxy.cache"):
        await failing(tokens, UpstreamRejectedKey)
    assert (
        "the shared token's issue failed (upstream_rejected_key, 1 in a row):"
        " not asked for again for 1 s" in caplog.text
    )
    with pytest.raises(UpstreamRejectedKey) as again:
        await get(tokens, "")
    assert again.value.detail == (
        "the upstream rejected the API key (401); the shared token is not asked for again for 1 s"
    )
    clock.now += 1

    waits = []
    for _ in range(5):  # each time the back-off has passed
        waits.append(await failing(tokens, UpstreamRejectedKey))
        for _ in range(20):  # everybody meanwhile: that failure again, and no call
            assert await failing(tokens, UpstreamRejectedKey) == waits[-1]
        clock.now += int(waits[-1]) - 0.5
        assert await failing(tokens, UpstreamRejectedKey) == "1"  # half a second: one
        clock.now += 0.5

    assert waits == ["2", "4", "5", "5", "5"]  # after the first: 1, 2, 4, then the limit
    assert shop.issues == 1 + 6
    assert tokens.degraded() == (
        "the shared token could not be issued (upstream_rejected_key, 6 in a row);"
        " next attempt on the next request"
    )
    assert degraded_gauge(metrics) == 1
    shop.error = None
    with caplog.at_level("WARNING", logger="widget_proxy.cache"):
        assert await get(tokens, "") == "shop-token-8"  # the vendor is back: so is the token
    assert "the shared token was issued again: the back-off is over" in caplog.text
    assert await get(tokens, "") == "shop-token-8"  # and it is cached under its key
    assert shop.issues == 8
    assert shop.asked_for == {Identity("")}  # for whom it was asked
    assert tokens.degraded() is None
    assert degraded_gauge(metrics) == 0
    shop.error = UpstreamRejectedKey("refused again")
    clock.now += 3600  # the token ends; its next issue fails: the back-off starts over
    assert await failing(tokens, UpstreamRejectedKey) == "1"


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [("3", "3"), ("0", "1"), ("86400", "5"), ("soon", "1"), (None, "1")],
    ids=["honoured", "zero", "bounded", "unreadable", "none"],
)
async def test_the_vendors_retry_after_is_honoured_within_the_limit(
    retry_after: str | None, wait: str
) -> None:
    clock = Clock()
    shop = Shop(clock)
    tokens, _ = shop_cache(clock, shop)
    shop.error = UpstreamBusy("token issue answered 429", retry_after=retry_after)

    assert await failing(tokens, UpstreamBusy) == wait
    clock.now += int(wait) - 0.5
    assert await failing(tokens, UpstreamBusy) == "1"
    assert shop.issues == 1
    assert tokens.degraded() == (
        "the shared token could not be issued (upstream_busy, 1 in a row); next attempt in 1 s"
    )
    clock.now += 0.5
    await failing(tokens, UpstreamBusy)
    assert shop.issues == 2


async def test_concurrent_requests_share_one_failed_issue_and_count_it_once() -> None:
    clock = Clock()
    shop = Shop(clock)
    tokens, _ = shop_cache(clock, shop)
    shop.error = UpstreamBadStatus("token issue answered 500")

    async def attempt() -> str:
        return await failing(tokens, UpstreamBadStatus)

    waits = await asyncio.gather(*(attempt() for _ in range(100)))

    assert shop.issues == 1
    assert set(waits) == {"1"}  # every waiting request is told when to come back
    clock.now += 1
    assert await failing(tokens, UpstreamBadStatus) == "2"  # the second failure in a row


async def test_a_per_user_token_is_not_backed_off() -> None:
    clock = Clock()
    vendor = Vendor(clock)
    vendor.fail = True
    tokens, metrics = counted_cache(clock, vendor, MemoryStore(100, clock=clock))

    for _ in range(3):  # one user's signin failing is theirs: asked each time
        with pytest.raises(UpstreamTimeout):
            await get(tokens)

    assert vendor.signins == 3
    assert tokens.degraded() is None
    assert degraded_gauge(metrics) == -1  # no such series: nothing shared to degrade
