"""Neuroon's shop token: its definition, one issue per shop as it rotates, and asked of the
vendor's API (remote mode)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from base64 import urlsafe_b64encode
from collections.abc import Callable, Iterator

import pytest

from tests.support import EMAIL, UNLIMITED, Clock, Proxy
from tests.support.redis import forget, require_redis
from tests.support.vendors import SHOP_KEY, cookie, neuroon_env, search
from widget_proxy.cache import MemoryStore, RedisStore, Store, TieredStore, TokenCache
from widget_proxy.providers.neuroon import NeuroonSettings, NeuroonStandIn
from widget_proxy.providers.neuroon.tokens import NeuroonTokens, shop_token
from widget_proxy.security.identity import Identity
from widget_proxy.settings import Settings
from widget_proxy.upstream.client import HttpClient
from widget_proxy.upstream.keyring import KeyRing


def test_neuroon_token_matches_its_definition() -> None:
    shop, ts = "shop-1", 1_795_000_000
    signature = hmac.new(SHOP_KEY.encode(), f"{shop}:{ts}".encode(), hashlib.sha256).hexdigest()
    padded = urlsafe_b64encode(f"{shop}:{ts}:{signature}".encode()).decode()
    by_hand = padded.rstrip("=")

    assert shop_token(shop, SHOP_KEY, ts) == by_hand
    assert padded.endswith("=")  # this vector needs padding, so the no-padding rule is tested
    assert "=" not in shop_token(shop, SHOP_KEY, ts)


def neuroon_cache(clock: Clock, store: Store, **env: str) -> tuple[TokenCache, NeuroonTokens]:
    settings = Settings.from_env(neuroon_env(**env))
    group = settings.vendor
    assert isinstance(group, NeuroonSettings)
    issuer = NeuroonTokens(
        HttpClient(),
        shop_id=group.shop_id,
        keys=KeyRing(group.api_key),
        rotate_after=group.rotate_after,
        clock=clock,
    )
    tokens = TokenCache(store, issuer, margin=settings.token_refresh_margin, clock=clock)
    return tokens, issuer


async def shop_token_for(tokens: TokenCache, email: str) -> str:
    identity = Identity(email)
    key = tokens.key(identity)
    return tokens.cached(key) or await tokens.fetch(key, identity)


@pytest.fixture(params=["memory", "redis"])
def shared_store(request: pytest.FixtureRequest, clock: Clock) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore(1000, clock=clock)
        return
    url, prefix = require_redis(), f"wp-test-{secrets.token_hex(4)}:"
    yield TieredStore(
        MemoryStore(1000, clock=clock),
        RedisStore(url, secret="s" * 32, prefix=prefix, clock=clock),
        where=url,
    )
    forget(url, prefix)


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.now = float(int(time.time()))  # Neuroon's own check runs on the real clock
    return clock


@pytest.mark.anyio
async def test_neuroon_rotation_one_issue_per_shop(clock: Clock, shared_store: Store) -> None:
    tokens, _ = neuroon_cache(clock, shared_store)
    start = clock.now
    issued: set[str] = set()
    try:
        await rotate(tokens, clock, start, issued)
    finally:
        await shared_store.aclose()  # its connections belong to this test's event loop

    assert len(issued) == 3  # at 0 h, 23 h and 46 h


async def rotate(tokens: TokenCache, clock: Clock, start: float, issued: set[str]) -> None:
    first = await asyncio.gather(*(shop_token_for(tokens, f"u{i}@x.io") for i in range(200)))
    assert len(set(first)) == 1  # one token for every user of the shop
    for hours in range(1, 49):
        clock.now = start + hours * 3600 - 1
        token = await shop_token_for(tokens, EMAIL)
        issued.add(token)
        age = clock.now - int(token_timestamp(token))
        assert age < 24 * 3600  # never served older than 24 h
        assert age < 23 * 3600 + 1  # re-issued after 23 h


def token_timestamp(token: str) -> str:
    from base64 import urlsafe_b64decode

    return urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().split(":")[1]


def test_neuroon_remote_mode_asks_the_api_once_per_shop(
    make_proxy: Callable[..., Proxy], neuroon: tuple[NeuroonStandIn, str]
) -> None:
    vendor, url = neuroon
    proxy = make_proxy(
        settings=Settings.from_env(
            {**neuroon_env(NEUROON_TOKEN_MODE="remote", NEUROON_API_URL=url), **UNLIMITED}
        )
    )

    tokens = {proxy.client.post("/widget/token", headers=cookie(proxy, f"u{i}@x.io")).json()[
        "token"] for i in range(5)}  # fmt: skip

    assert len(tokens) == 1
    assert vendor.calls["token_issue"] == 1
    assert search(url, tokens.pop()).status_code == 200


def test_neuroon_remote_key_refused_is_a_502(
    make_proxy: Callable[..., Proxy], neuroon: tuple[NeuroonStandIn, str]
) -> None:
    vendor, url = neuroon
    env = neuroon_env(NEUROON_TOKEN_MODE="remote", NEUROON_API_URL=url)
    env["NEUROON_API_KEY"] = "sk_" + secrets.token_hex(16)
    proxy = make_proxy(settings=Settings.from_env({**env, **UNLIMITED}))

    response = proxy.client.post("/widget/token", headers=cookie(proxy, EMAIL))

    assert response.status_code == 502
    assert response.json()["error"] == "upstream_rejected_key"
    assert vendor.calls["token_issue"] == 1  # refused by the stand-in itself, never retried


# --- Hissuno ------------------------------------------------------------------------
