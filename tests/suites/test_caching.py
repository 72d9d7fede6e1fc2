"""Caching and coalescing against real servers: the vendor stand-in counts every call."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx2
import jwt
import pytest
import redis

from tests.support import (
    EMAIL,
    Clock,
    LeakScanner,
    Proxy,
    async_scanning_client,
    fresh_secret,
    token_in,
    wait_until,
)
from tests.support.processes import Served, serve
from tests.support.redis import private_redis
from widget_proxy.providers.returningai import ReturningAIStandIn
from widget_proxy.servers import BackgroundServer
from widget_proxy.settings import Settings


async def burst(proxy: Proxy, emails: list[str], url: str | None = None) -> list[httpx2.Response]:
    """Send one request per email, all at once."""
    limits = httpx2.Limits(max_connections=len(emails))
    async with async_scanning_client(
        proxy.scanner, base_url=url or proxy.url, limits=limits, timeout=30
    ) as client:
        return await asyncio.gather(
            *(client.get("/widget", headers=proxy.cookie({"email": e})) for e in emails)
        )


@pytest.mark.slow
def test_one_signin_and_one_page_fetch_for_a_cold_burst_then_none(
    proxy: Proxy, vendor: ReturningAIStandIn
) -> None:
    vendor.signin_delay = vendor.page_delay = 0.2  # so the 200 requests really overlap

    responses = asyncio.run(burst(proxy, [EMAIL] * 200))

    assert [r.status_code for r in responses] == [200] * 200
    assert len({token_in(r.text) for r in responses}) == 1
    assert vendor.calls == {"signin": 1, "page": 1}

    vendor.signin_delay = vendor.page_delay = 0.0
    for _ in range(1000):
        assert proxy.get("/widget", EMAIL).status_code == 200
    assert vendor.calls == {"signin": 1, "page": 1}


@pytest.mark.slow
def test_each_user_gets_their_own_token_under_concurrency(
    proxy: Proxy, vendor: ReturningAIStandIn
) -> None:
    vendor.signin_delay = 0.05
    emails = [f"user{i}@example.com" for i in range(40)] * 5

    responses = asyncio.run(burst(proxy, emails))

    for email, response in zip(emails, responses, strict=True):
        claims = jwt.decode(token_in(response.text), vendor.signing_key, algorithms=["HS256"])
        assert claims["email"] == email
    assert vendor.calls["signin"] == 40
    assert vendor.calls["page"] == 1


@pytest.mark.slow
def test_a_short_lived_token_is_renewed_before_it_expires(
    make_proxy: Callable[..., Proxy], vendor: ReturningAIStandIn
) -> None:
    vendor.token_ttl = 3
    proxy = make_proxy(TOKEN_REFRESH_MARGIN="1")

    deadline = time.time() + 5
    remaining: list[float] = []
    while time.time() < deadline:
        asked = time.time()  # before the proxy decided: its "now" is later, never earlier
        response = proxy.get("/widget", EMAIL)
        exp = jwt.decode(token_in(response.text), vendor.signing_key, algorithms=["HS256"])["exp"]
        remaining.append(exp - asked)
        time.sleep(0.02)

    assert min(remaining) > 1  # never served within the margin, however slow the trip
    assert 2 <= vendor.calls["signin"] <= 4  # renewed about every 2 s, not per request


def test_an_expired_page_is_revalidated_with_its_etag(
    make_proxy: Callable[..., Proxy], vendor: ReturningAIStandIn
) -> None:
    clock = Clock(time.time())  # the proxy's caches read it; it moves only by hand
    proxy = make_proxy(PAGE_CACHE_TTL="1", clock=clock)
    first = proxy.get("/widget", EMAIL)
    clock.now += 1.5  # past the page's TTL

    stale = proxy.get("/widget", EMAIL)  # served at once; one refresh in the background
    wait_until(lambda: vendor.calls["page_not_modified"] == 1)
    fresh = proxy.get("/widget", EMAIL)

    assert first.text == stale.text == fresh.text
    assert vendor.calls["page"] == 2
    assert vendor.calls["page_not_modified"] == 1
    assert vendor.calls["signin"] == 1


@pytest.mark.slow
def test_two_proxies_sharing_redis_sign_each_user_in_once(
    make_proxy: Callable[..., Proxy], make_settings: Callable[..., object],
    vendor: ReturningAIStandIn, shared_redis: str,
) -> None:  # fmt: skip
    # Redis's 1 s timeouts, on a loaded two-core machine, can time out and send each
    # process to its own cache (as documented): this test is about coalescing, not that.
    slow = f"{shared_redis}?socket_timeout=10&socket_connect_timeout=10"
    settings = make_settings(CACHE_URL=slow)
    one, two = make_proxy(settings), make_proxy(settings)
    vendor.signin_delay = vendor.page_delay = 0.1
    emails = [f"user{i}@example.com" for i in range(20)] * 4

    async def both() -> list[httpx2.Response]:
        first, second = await asyncio.gather(burst(one, emails), burst(two, emails, url=two.url))
        return first + second

    responses = asyncio.run(both())

    assert {r.status_code for r in responses} == {200}
    assert vendor.calls["signin"] == 20
    assert vendor.calls["page"] == 1


@pytest.mark.slow
def test_pages_survive_a_redis_outage(
    make_proxy: Callable[..., Proxy], vendor: ReturningAIStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    with private_redis() as server:
        proxy = make_proxy(CACHE_URL=server.url)
        assert proxy.get("/widget", "warm@example.com").status_code == 200

        server.kill()
        with caplog.at_level(logging.WARNING, logger="widget_proxy.cache"):
            assert proxy.get("/widget", "warm@example.com").status_code == 200
            assert proxy.get("/widget", "new@example.com").status_code == 200
            assert proxy.get("/widget", "new@example.com").status_code == 200
        assert "is unreachable (ConnectionError)" in caplog.text
        assert caplog.text.count("is unreachable") == 1  # one warning for the outage
        assert vendor.calls["signin"] == 2  # the new user, once: this process remembered

        server.start()
        with caplog.at_level(logging.WARNING, logger="widget_proxy.cache"):
            # The store tries Redis again a second after it failed; each request may be it
            # (a new user each time, so that the token is written, not read from memory).
            users = (f"later{i}@example.com" for i in itertools.count())
            wait_until(
                lambda: (
                    proxy.get("/widget", next(users)).status_code == 200
                    and "is reachable again" in caplog.text
                )
            )
            assert proxy.get("/widget", next(users)).status_code == 200
        with redis.Redis.from_url(server.url) as client:
            assert any(k.startswith(b"widget-proxy:tok:") for k in client.scan_iter())


@pytest.mark.slow
def test_serve_with_two_workers_and_redis(
    tmp_path: Path, vendor: ReturningAIStandIn, upstream: str, shared_redis: str,
    leak_scanner: LeakScanner,
) -> None:  # fmt: skip
    vendor.signin_delay = 0.1
    emails = [f"worker{i}@example.com" for i in range(10)] * 8

    async def hit(proxy: Served) -> list[int]:
        async with async_scanning_client(leak_scanner, base_url=proxy.url, timeout=30) as client:
            responses = await asyncio.gather(
                *(client.get("/widget", headers=proxy.cookie(e)) for e in emails)
            )
        return [r.status_code for r in responses]

    with serve(
        tmp_path, vendor, upstream, leak_scanner, "--workers", "2", CACHE_URL=shared_redis
    ) as proxy:
        statuses = asyncio.run(hit(proxy))

    assert statuses == [200] * len(emails)
    assert vendor.calls["signin"] == 10
    assert vendor.calls["page"] == 1


def test_cache_max_entries_bounds_each_process_memory(
    make_proxy: Callable[..., Proxy], vendor: ReturningAIStandIn
) -> None:
    proxy = make_proxy(CACHE_MAX_ENTRIES="3")  # the page and two users' tokens
    for email in ("one@example.com", "two@example.com", "one@example.com"):
        assert proxy.get("/widget", email).status_code == 200
    assert vendor.calls["signin"] == 2  # both tokens fit

    assert proxy.get("/widget", "three@example.com").status_code == 200  # evicts "two"
    assert proxy.get("/widget", "one@example.com").status_code == 200  # still held
    assert vendor.calls["signin"] == 3
    assert proxy.get("/widget", "two@example.com").status_code == 200  # signed in again
    assert vendor.calls["signin"] == 4
    assert vendor.calls["page"] == 1  # the page, used on every view, was never evicted


def test_a_token_shorter_than_the_margin_is_served_not_cached_and_said_so(
    make_proxy: Callable[..., Proxy], vendor: ReturningAIStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    vendor.token_ttl = 30
    proxy = make_proxy(TOKEN_REFRESH_MARGIN="60")

    with caplog.at_level(logging.WARNING, logger="widget_proxy.cache"):
        first = proxy.get("/widget", EMAIL)
        second = proxy.get("/widget", EMAIL)

    assert first.status_code == second.status_code == 200
    assert token_in(first.text)
    assert vendor.calls["signin"] == 2  # not cached: every view signs in
    warnings = [r.getMessage() for r in caplog.records if "TOKEN_REFRESH_MARGIN" in r.getMessage()]
    assert len(warnings) == 2
    assert "lives less than TOKEN_REFRESH_MARGIN (60 s): not cached" in warnings[0]


def test_redis_keys_hold_no_email_and_no_address(
    make_proxy: Callable[..., Proxy], shared_redis: str
) -> None:
    proxy = make_proxy(
        CACHE_URL=shared_redis, RATE_LIMIT_PER_MINUTE="100", RATE_LIMIT_SYNC_INTERVAL="0.1"
    )
    assert proxy.get("/widget", EMAIL).status_code == 200

    def stored() -> list[str]:
        with redis.Redis.from_url(shared_redis) as client:
            return [k.decode() for k in client.scan_iter(match="widget-proxy:*")]

    # The rate counts arrive with the next sync, the user's and the client IP's.
    wait_until(lambda: sum(":rate:" in key for key in stored()) == 2, timeout=10)
    keys = stored()
    kinds = {key.split(":")[1] for key in keys}
    assert {"tok", "page", "rate"} <= kinds, keys
    for key in keys:
        assert "ann" not in key
        assert "example.com" not in key
        assert "127.0.0.1" not in key


@pytest.mark.slow
def test_rediss_urls_reach_redis_over_tls(
    make_proxy: Callable[..., Proxy],
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    vendor: ReturningAIStandIn,
) -> None:
    with private_redis(tls=tmp_path) as server:
        assert server.url.startswith("rediss://")
        settings = make_settings(CACHE_URL=server.url)
        one = make_proxy(settings)
        assert one.get("/widget", EMAIL).status_code == 200
        two = make_proxy(settings)  # another proxy, sharing that Redis

        assert two.get("/widget", EMAIL).status_code == 200
        assert vendor.calls["signin"] == 1  # the token came through Redis, over TLS
        with redis.Redis.from_url(server.url) as client:
            assert any(k.startswith(b"widget-proxy:tok:") for k in client.scan_iter())


@pytest.mark.slow
def test_a_rotated_vendor_key_retires_every_token_made_with_the_old_one(
    make_proxy: Callable[..., Proxy],
    make_settings: Callable[..., Settings],
    vendor: ReturningAIStandIn,
    shared_redis: str,
) -> None:
    old = make_settings(CACHE_URL=shared_redis)
    assert make_proxy(old).get("/widget", EMAIL).status_code == 200
    assert vendor.calls["signin"] == 1

    # The same shop, SESSION_SECRET and Redis, restarted with another API key. (The stand-in
    # accepts only its own key, so the new proxy points at a second stand-in with it.)
    rotated = ReturningAIStandIn(
        api_key=fresh_secret("wp-rotated-"),
        community_id=vendor.community_id,
        signing_key=vendor.signing_key,
    )
    with BackgroundServer(rotated.app(), timeout_graceful_shutdown=1) as server:
        env = {
            **rotated.proxy_env(server.url),
            "SESSION_SECRET": old.session_secret.reveal(),
            "CACHE_URL": shared_redis,
        }
        new = make_proxy(Settings.from_env({**env, "RATE_LIMIT_PER_MINUTE": "1000"}))
        assert new.get("/widget", EMAIL).status_code == 200

    assert rotated.calls["signin"] == 1  # signed in afresh: the old token was not served


@pytest.mark.slow
def test_proxies_for_different_vendors_share_a_redis_without_sharing_tokens(
    make_proxy: Callable[..., Proxy],
    make_settings: Callable[..., Settings],
    vendor: ReturningAIStandIn,
    shared_redis: str,
) -> None:
    one = make_settings(CACHE_URL=shared_redis)
    other_vendor = ReturningAIStandIn(
        api_key=vendor.api_key, community_id=vendor.community_id, signing_key="x" * 32
    )
    with BackgroundServer(other_vendor.app(), timeout_graceful_shutdown=1) as server:
        two = Settings.from_env(
            {
                **other_vendor.proxy_env(server.url),  # the same community, another base URL
                "SESSION_SECRET": one.session_secret.reveal(),
                "CACHE_URL": shared_redis,
                "RATE_LIMIT_PER_MINUTE": "1000",
            }
        )
        first = make_proxy(one).get("/widget", EMAIL)
        second = make_proxy(two).get("/widget", EMAIL)

    assert token_in(first.text) != token_in(second.text)
    assert jwt.decode(token_in(second.text), "x" * 32, algorithms=["HS256"])["email"] == EMAIL
    assert vendor.calls["signin"] == other_vendor.calls["signin"] == 1


def test_a_redis_password_in_the_url_is_never_logged(
    make_proxy: Callable[..., Proxy], caplog: pytest.LogCaptureFixture, leak_scanner: LeakScanner
) -> None:
    with private_redis() as server:
        password = fresh_secret()
        url = server.url.replace("/0", f"/0?password={password}")
        proxy = make_proxy(CACHE_URL=url)
        assert password in proxy.settings.secrets  # so the redaction knows it
        server.kill()
        with caplog.at_level(logging.WARNING, logger="widget_proxy.cache"):
            assert proxy.get("/widget", EMAIL).status_code == 200

    assert "is unreachable" in caplog.text
    assert "password=***" in caplog.text
    assert password not in caplog.text
