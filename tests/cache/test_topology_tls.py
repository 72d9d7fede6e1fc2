"""rediss+sentinel:// and rediss+cluster:// against real servers that speak TLS only.

Every node and sentinel the tests start listens with TLS alone (`--port 0`), replicates
and runs its cluster bus over TLS, and presents one self-signed certificate for
127.0.0.1; the URLs trust it with `?ssl_ca_certs=`, as the rediss:// test does
(tests/suites/test_caching.py). A plain client, or one trusting another certificate, is refused.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support import LeakScanner, Proxy, fresh_secret
from tests.support.processes import run_check
from tests.support.redis import (
    PrivateCluster,
    PrivateSentinel,
    private_cluster,
    private_sentinel,
    self_signed,
)
from widget_proxy.cache import RedisStore, TieredStore, TokenEntry, open_store, redacted_url
from widget_proxy.cache.topology import redis_client
from widget_proxy.providers.returningai import ReturningAIStandIn

pytestmark = [pytest.mark.anyio, pytest.mark.slow]  # Sentinels and Clusters of their own
SECRET = "s" * 32
PASSWORD = fresh_secret("tls-pw-")
KINDS = ["sentinel", "cluster"]
Servers = PrivateSentinel | PrivateCluster
# A refusal is said about as fast as by one server: a page view that needs the cache
# waits no longer (redis-py's default retries made it 12-13 s through sentinels).
REFUSED_WITHIN = 5.0


@pytest.fixture(scope="module")
def tls_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateSentinel]:
    with private_sentinel(tls=tmp_path_factory.mktemp("sentinel-tls")) as found:
        yield found


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateCluster]:
    with private_cluster(tls=tmp_path_factory.mktemp("cluster-tls")) as found:
        yield found


@pytest.fixture(params=KINDS)
def servers(request: pytest.FixtureRequest) -> Servers:
    found: Servers = request.getfixturevalue(f"tls_{request.param}")
    return found


def ports(found: Servers) -> list[int]:
    """Every port of the deployment: data nodes, and sentinels."""
    if isinstance(found, PrivateSentinel):
        return [found.master.port, found.replica.port, *found.sentinel_ports]
    return [node.port for node in found.nodes]


async def test_a_store_works_over_tls(servers: Servers) -> None:
    assert servers.url.startswith(("rediss+sentinel://", "rediss+cluster://"))
    # What TLS changes, not how fast: on a machine this loaded, a TLS command past the
    # proxy's 1 s makes redis-py's cluster client reset every connection (an outage the
    # proxy rides out in memory, tests/suites/test_redis_failover.py; here it would fail the test).
    client = redis_client(servers.url, timeout=10)
    store = RedisStore(client, secret=SECRET, prefix=f"wp-test-{secrets.token_hex(4)}:")
    try:
        now = time.time()
        await store.set("tok", TokenEntry("over-tls", now + 60, now))
        assert await store.get("tok", TokenEntry) == TokenEntry("over-tls", now + 60, now)
        keys = [f"user-{n}" for n in range(20)]  # many slots, on every cluster node
        batch = [(k, {7: n + 1}) for n, k in enumerate(keys)]
        counts = await store.add_counts(batch, oldest=0, keep=120)
        assert counts == [{7: n + 1} for n in range(20)]

        if isinstance(servers, PrivateSentinel):
            assert store.topology() == {
                "topology": "sentinel",
                "service": servers.service,
                "master": f"127.0.0.1:{servers.master.port}",
            }
        else:
            assert store.topology() == {"topology": "cluster", "nodes": 3}
    finally:
        await store.aclose()


def test_readiness_and_check_over_tls(
    servers: Servers,
    make_proxy: Callable[..., Proxy],
    tmp_path: Path,
    vendor: ReturningAIStandIn,
    upstream: str,
    leak_scanner: LeakScanner,
) -> None:
    kind = "sentinel" if isinstance(servers, PrivateSentinel) else "cluster"
    proxy = make_proxy(CACHE_URL=servers.url)
    assert proxy.get("/widget", "ann@example.com").status_code == 200
    ready = proxy.client.get("/readyz").json()
    env = {**vendor.proxy_env(upstream), "SESSION_SECRET": fresh_secret(), "CACHE_URL": servers.url}
    checked = run_check(tmp_path, env, "t@example.com")

    assert ready["cache"]["topology"] == kind
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert re.search(rf"^✔ cache: {kind} Redis answers", checked.stdout, re.MULTILINE)
    leak_scanner.check("the check's output", checked.stdout + checked.stderr)


def test_every_node_refuses_a_plain_client(servers: Servers) -> None:
    once = Retry(NoBackoff(), 0)  # the refusal, not redis-py's retries and their pauses
    for port in ports(servers):
        plain = redis.Redis("127.0.0.1", port, socket_timeout=1, retry=once)
        with plain, pytest.raises(redis.ConnectionError):
            plain.ping()


async def test_the_plain_scheme_is_refused(servers: Servers) -> None:
    plain = servers.url.replace("rediss+", "redis+", 1).partition("?")[0]
    store = RedisStore(plain, secret=SECRET)
    try:
        started = time.monotonic()
        with pytest.raises(redis.RedisError):
            await store.ping()
        elapsed = time.monotonic() - started
    finally:
        await store.aclose()
    assert elapsed < REFUSED_WITHIN, elapsed  # through sentinels, once 12.3 s


async def test_another_certificate_is_refused_without_showing_the_password(
    servers: Servers, tmp_path: Path
) -> None:
    assert servers.ca is not None
    stranger, _ = self_signed(tmp_path)  # a CA that signed none of these servers
    url = servers.url.replace("://", f"://:{PASSWORD}@", 1).replace(str(servers.ca), str(stranger))
    store = RedisStore(url, secret=SECRET)
    try:
        started = time.monotonic()
        with pytest.raises(redis.RedisError) as caught:
            await store.ping()
        elapsed = time.monotonic() - started
    finally:
        await store.aclose()
    assert elapsed < REFUSED_WITHIN, elapsed  # through sentinels, once 13.0 s

    said = f"{caught.value} {caught.value!r}"
    assert PASSWORD not in said
    assert PASSWORD not in redacted_url(url)
    if isinstance(servers, PrivateCluster):
        # The cluster client says why: [SSL: CERTIFICATE_VERIFY_FAILED] certificate
        # verify failed: self-signed certificate.
        assert "certificate verify failed" in str(caught.value)
    else:
        # redis-py's Sentinel collects each sentinel's error as its repr, which in
        # redis-py 8 is only the kind ("network:ConnectionError"): the reason is lost.
        assert "No master found" in str(caught.value)


async def test_a_refused_tls_cache_is_an_outage_not_a_failed_page(
    servers: Servers, tmp_path: Path
) -> None:
    assert servers.ca is not None
    stranger, _ = self_signed(tmp_path)
    store = open_store(servers.url.replace(str(servers.ca), str(stranger)), secret=SECRET)
    assert isinstance(store, TieredStore)
    try:
        now = time.time()
        await store.set("tok", TokenEntry("memory-only", now + 60, now))  # no raise
        assert await store.get("tok", TokenEntry) == TokenEntry("memory-only", now + 60, now)
        assert store.degraded() is not None  # said, and served from this process's memory
    finally:
        await store.aclose()


def test_the_check_names_a_refused_tls_cache_without_the_password(
    servers: Servers,
    tmp_path: Path,
    vendor: ReturningAIStandIn,
    upstream: str,
    leak_scanner: LeakScanner,
) -> None:
    assert servers.ca is not None
    stranger, _ = self_signed(tmp_path)
    url = servers.url.replace("://", f"://:{PASSWORD}@", 1).replace(str(servers.ca), str(stranger))
    env = {**vendor.proxy_env(upstream), "SESSION_SECRET": fresh_secret(), "CACHE_URL": url}
    checked = run_check(tmp_path, env, "t@example.com")

    assert checked.returncode != 0, checked.stdout
    assert re.search(r"^✘ cache: rediss\+(sentinel|cluster)://.* does not answer", checked.stdout,
                     re.MULTILINE), checked.stdout  # fmt: skip
    assert PASSWORD not in checked.stdout + checked.stderr
    leak_scanner.check("the check's output", checked.stdout + checked.stderr)
