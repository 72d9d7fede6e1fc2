"""Rate limits per user and per client IP: who counts as one client, when one is refused,
and what the shared store sees of them (`security/ratelimit.py`)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tests.support import Clock
from widget_proxy.cache.counts import WindowCounters
from widget_proxy.cache.keys import Hasher, Keys
from widget_proxy.errors import RateLimited
from widget_proxy.ops.metrics import Metrics
from widget_proxy.security.ratelimit import LONGEST_ADDRESS, REMEMBERED, RateLimits, ip_client

SECRET = "s" * 32


@pytest.mark.parametrize(
    ("ip", "client"),
    [
        ("203.0.113.5", "203.0.113.5"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),  # an IPv6 client is its /64
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        (" 2001:db8:1:3::1 ", "2001:db8:1:3::/64"),
        ("fe80::1%eth0", "fe80::/64"),  # the zone is dropped
        ("::ffff:192.0.2.1", "192.0.2.1"),  # an IPv4-mapped address is its IPv4 address
        ("not:an:address", "not:an:address"),  # counted as itself
        ("unix-socket", "unix-socket"),
        ("", ""),
    ],
)
def test_who_counts_as_one_client(ip: str, client: str) -> None:
    assert ip_client(ip) == client


def limits(metrics: Metrics, **kw: int) -> RateLimits:
    counters = WindowCounters(clock=Clock())
    return RateLimits(counters, keys=Keys(SECRET), metrics=metrics, **kw)


def refused(metrics: Metrics, limit: str) -> float:
    value = metrics.registry.get_sample_value("widget_proxy_rate_limited_total", {"limit": limit})
    return value or 0.0


@pytest.mark.parametrize(
    ("who", "kw", "allowed", "check", "wait"),
    [
        ("user", {}, 60, lambda r, n: r.count_user("ann@example.com"), "61"),  # the defaults
        ("ip", {}, 120, lambda r, n: r.count_ip("203.0.113.5"), "61"),
        ("user", {"per_user": 3}, 3, lambda r, n: r.count_user("ann@example.com"), "62"),
        # every address of one IPv6 /64 is one client
        ("ip", {"per_ip": 3}, 3, lambda r, n: r.count_ip(f"2001:db8:1:2::{n:x}"), "62"),
    ],
)
def test_a_client_over_its_limit_is_refused_until_the_window_moves(
    who: str, kw: dict[str, int], allowed: int, check: object, wait: str
) -> None:
    """All counted in one second: the first of them leaves the window once its 5 s slot
    has slid out for 1/`allowed` of its width (60 s + 5 s / `allowed`, rounded up)."""
    metrics = Metrics()
    rate = limits(metrics, **kw)
    assert callable(check)

    for n in range(allowed):
        check(rate, n)
    with pytest.raises(RateLimited) as caught:
        check(rate, allowed)

    assert caught.value.detail == f"more than {allowed} requests a minute from this {who}"
    assert caught.value.retry_after == wait
    assert caught.value.status == 429
    assert refused(metrics, who) == 1
    assert refused(metrics, "user" if who == "ip" else "ip") == 0


def test_users_and_addresses_are_counted_apart() -> None:
    metrics = Metrics()
    rate = limits(metrics, per_user=1, per_ip=1)

    rate.count_user("ann@example.com")
    rate.count_user("bob@example.com")
    rate.count_ip("203.0.113.5")
    rate.count_ip("203.0.113.6")
    rate.count_ip("2001:db8:1:3::1")  # another /64

    with pytest.raises(RateLimited):
        rate.count_user("ann@example.com")
    with pytest.raises(RateLimited):
        rate.count_ip("2001:db8:1:3::2")


class Shared:
    """A shared store that records the keys it is sent, and shares nothing."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    async def add_counts(
        self, batch: Sequence[tuple[str, dict[int, int]]], *, oldest: int, keep: float
    ) -> list[dict[int, int]] | None:
        self.keys += [key for key, _ in batch]
        return None


@pytest.mark.anyio
async def test_the_shared_store_sees_no_email_or_address() -> None:
    keys: list[str] = []
    for secret in (SECRET, "t" * 32):
        shared = Shared()
        counters = WindowCounters(shared=shared, clock=Clock())
        rate = RateLimits(counters, keys=Keys(secret))
        rate.count_user("ann@example.com")
        rate.count_ip("203.0.113.5")
        await counters.aclose()
        keys += sorted(shared.keys)

    assert all("ann" not in key and "203.0" not in key for key in keys)
    assert [key.split(":")[0] for key in keys] == ["ip", "user", "ip", "user"]
    assert len(set(keys)) == 4  # a secret of its own, keys of its own


def test_a_refusal_holds_to_the_end_of_the_wait_even_under_a_second() -> None:
    clock = Clock()
    rate = RateLimits(WindowCounters(clock=clock), keys=Keys(SECRET), per_user=1)
    rate.count_user("ann@example.com")

    clock.now += 64.5  # its 5 s slot has all but half a second slid out of the window
    with pytest.raises(RateLimited) as caught:
        rate.count_user("ann@example.com")
    assert caught.value.retry_after == "1"
    clock.now += 0.5
    rate.count_user("ann@example.com")  # gone: admitted


@pytest.mark.parametrize(
    ("address", "client"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("::ffff:198.51.100.7", "198.51.100.7"),  # IPv4-mapped: the IPv4 address
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("", ""),  # no peer: counted as itself
        ("garbage", "garbage"),
    ],
)
def test_rate_limits_count_ipv4_addresses_and_ipv6_64s(address: str, client: str) -> None:
    assert ip_client(address) == client


def test_a_refusal_tallied_uses_up_the_addresss_room_and_is_not_refused_again() -> None:
    metrics = Metrics()
    rate = limits(metrics, per_ip=3)

    for _ in range(5):  # past the limit: a request refused already is only counted
        rate.tally_ip("203.0.113.5")
    rate.count_ip("198.51.100.7")  # another address has its own room

    with pytest.raises(RateLimited):
        rate.count_ip("203.0.113.5")
    with pytest.raises(RateLimited):
        rate.count_ip("::ffff:203.0.113.5")  # the same client, however its address is written
    assert refused(metrics, "ip") == 2  # the tallies themselves were never refusals


def test_each_addresss_key_is_remembered_within_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    hashed: list[str] = []
    digest = Hasher.__call__

    def recording(self: Hasher, value: str) -> str:
        hashed.append(value)
        return digest(self, value)

    monkeypatch.setattr(Hasher, "__call__", recording)
    rate = limits(Metrics(), per_ip=1_000_000)
    long = "x" * (LONGEST_ADDRESS + 1)  # no address: counted as itself, never remembered

    for _ in range(3):
        rate.count_ip("203.0.113.5")
        rate.count_ip(long)
    assert hashed == ["203.0.113.5", long, long, long]

    for n in range(REMEMBERED + 10):  # a flood of new addresses: bounded, then afresh
        rate.count_ip(f"10.0.{n // 256}.{n % 256}")
    assert len(rate._ip_keys) <= REMEMBERED
    hashed.clear()
    rate.count_ip("10.0.16.9")  # among the last ones
    assert hashed == []
