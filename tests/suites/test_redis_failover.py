"""A Redis failover under load, with real proxy processes, servers and vendor stand-in.

Two `widget-proxy serve` processes share a Sentinel's master or a Cluster while
client threads keep asking both for pages; the test kills the master (or a cluster
node) mid-way. No page view may fail; once Redis is whole again both processes use
it without a restart (shared coalescing: one signin for a user who asks both at
once), and each says so in its log: one warning for the outage, one line when over.
The rate limit is shared through a Cluster too, and the metrics count the nodes of
each topology (`widget_proxy_cache_nodes`), a Sentinel's before and after a failover.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.exceptions import ConnectionError as RedisConnectionError
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.support import Clock, LeakScanner, Proxy, scanning_client, token_in, wait_until
from tests.support.processes import (
    SHARED_LIMIT,
    Served,
    assert_shared,
    bound,
    paced_past_the_limit,
    serve,
)
from tests.support.redis import (
    PrivateCluster,
    private_cluster,
    private_redis,
    private_sentinel,
    restart_node,
)
from widget_proxy.cache import MemoryStore, TieredStore
from widget_proxy.health import CacheCensus
from widget_proxy.ops.metrics import Metrics
from widget_proxy.providers.returningai import ReturningAIStandIn
from widget_proxy.servers import BackgroundServer

USERS = [f"user{n}@example.com" for n in range(20)]
CLIENTS = 4  # threads asking for pages, each in turn of the users and of both processes
PAUSE = 0.01  # between one thread's page views: steady load, not a flood of two cores
FRESH = 10  # one page view in this many is a new user's first
PAGE_TTL = "2"  # so that pages are revalidated (under Redis's lock) during the failover
DEADLINE = 60.0  # for anything that waits on a failover, a restart or a retry pause
UNREACHABLE = "is unreachable ("  # TieredStore's one warning per outage
REACHABLE = "is reachable again"  # and its one line when the outage is over


class SigninCounter:
    """The vendor stand-in, counting its signins per email (the proxies' header)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.signins: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/signin"):
            self.signins[dict(scope["headers"]).get(b"email", b"").decode()] += 1
        await self.app(scope, receive, send)


@pytest.fixture
def counted(vendor: ReturningAIStandIn) -> Iterator[tuple[str, SigninCounter]]:
    """A vendor stand-in of this test's own: its URL and its signin counts."""
    counter = SigninCounter(vendor.app())
    with BackgroundServer(counter, timeout_graceful_shutdown=1) as server:
        yield server.url, counter


def view(client: httpx2.Client, proxy: Served, email: str, vendor: ReturningAIStandIn) -> str:
    """'' when the page came with `email`'s token injected, else what went wrong."""
    try:
        response = client.get(f"{proxy.url}/widget", headers=proxy.cookie(email))
    except Exception as exc:  # a transport error, or a leak the scanning client found
        return type(exc).__name__
    if response.status_code != 200:
        return f"status {response.status_code}"
    try:
        token = token_in(response.text)
    except AssertionError:
        return "no token in the page"
    claims, reason = vendor.verify(token)
    return reason or ("" if claims.get("email") == email else "another user's token")


class Load:
    """Page views from `CLIENTS` threads until the block ends; every failure kept.

    Mostly warm (`USERS`, in turn, from both processes), one in `FRESH` a new user's."""

    def __init__(
        self, proxies: list[Served], vendor: ReturningAIStandIn, scanner: LeakScanner
    ) -> None:
        self._proxies = proxies
        self._vendor = vendor
        self._scanner = scanner
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(CLIENTS)]
        self.views = 0
        self.failures: list[str] = []

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def more(self, n: int) -> None:
        """Until `n` more page views have been answered."""
        target = self.views + n
        wait_until(lambda: self.views >= target, timeout=DEADLINE)

    def _run(self, n: int) -> None:
        turns = itertools.count()
        with scanning_client(self._scanner, timeout=30) as client:
            while not self._stop.is_set():
                turn = next(turns)
                proxy = self._proxies[(turn + n) % len(self._proxies)]
                email = USERS[(turn + n) // len(self._proxies) % len(USERS)]
                if turn % FRESH == 0:  # a miss: Redis's lock and entries, or their absence
                    email = f"fresh{n}.{turn}@example.com"
                failed = view(client, proxy, email, self._vendor)
                with self._lock:
                    self.views += 1
                    if failed:
                        self.failures.append(f"{proxy.url} {failed}")
                time.sleep(PAUSE)


def both_at_once(
    a: Served, b: Served, email: str, vendor: ReturningAIStandIn, scanner: LeakScanner
) -> list[str]:
    """`email`'s first page views, one from each process at the same moment."""
    start = threading.Barrier(2)
    failed = ["", ""]

    def ask(at: int, proxy: Served) -> None:
        with scanning_client(scanner, timeout=30) as client:
            start.wait(timeout=30)
            failed[at] = view(client, proxy, email, vendor)

    threads = [threading.Thread(target=ask, args=(n, p)) for n, p in enumerate((a, b))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return [f"{p.url} {f}" for p, f in zip((a, b), failed, strict=True) if f]


def coalescing_resumes(
    a: Served, b: Served, signins: Counter[str], vendor: ReturningAIStandIn, scanner: LeakScanner
) -> list[str]:
    """Until a new user asking both processes at once is signed in once: both share
    Redis's lock again. Each process retries Redis only after its pause, so new users
    are signed in twice (each process on its own) until then. The failed page views."""
    failures: list[str] = []
    probes = itertools.count()

    def shared() -> bool:
        email = f"probe{next(probes)}@example.com"
        failures.extend(both_at_once(a, b, email, vendor, scanner))
        return signins[email] == 1

    wait_until(shared, timeout=DEADLINE)
    return failures


def lines(proxy: Served, text: str) -> int:
    return sum(text in line for line in proxy.log.read_text().splitlines())


def recovered(proxy: Served) -> bool:
    return lines(proxy, REACHABLE) >= 1


def parse_nodes(text: str) -> dict[tuple[str, str], float]:
    """widget_proxy_cache_nodes in a Prometheus text: (topology, role) → count."""
    return {
        (sample.labels["topology"], sample.labels["role"]): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "widget_proxy_cache_nodes"
        for sample in family.samples
    }


def cache_nodes(client: httpx2.Client, proxy: Served) -> dict[tuple[str, str], float]:
    """widget_proxy_cache_nodes from the process's /metrics."""
    return parse_nodes(client.get(f"{proxy.url}/metrics").text)


def counts_nodes(
    client: httpx2.Client, proxy: Served, topology: str, master: int, replica: int
) -> bool:
    expected = {(topology, "master"): master, (topology, "replica"): replica}
    return cache_nodes(client, proxy) == expected


def ready(client: httpx2.Client, proxy: Served) -> dict[str, object]:
    body = client.get(f"{proxy.url}/readyz").json()
    assert isinstance(body, dict)
    return body


def names_master(client: httpx2.Client, proxy: Served, service: str, master: str) -> bool:
    found = {"topology": "sentinel", "service": service, "master": master}
    return ready(client, proxy)["cache"] == found


def two_proxies(
    stack: ExitStack,
    tmp_path: Path,
    vendor: ReturningAIStandIn,
    upstream: str,
    scanner: LeakScanner,
    **env: str,
) -> tuple[Served, Served]:
    """Two `widget-proxy serve` processes of the same settings, until `stack` closes."""
    served = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        served.append(stack.enter_context(serve(tmp_path / name, vendor, upstream, scanner, **env)))
    return served[0], served[1]


def warmed_pair(
    stack: ExitStack,
    tmp_path: Path,
    vendor: ReturningAIStandIn,
    counted: tuple[str, SigninCounter],
    scanner: LeakScanner,
    url: str,
    nodes: tuple[str, int, int],
) -> tuple[Served, Served, httpx2.Client]:
    """Two proxies on the cache at `url`, every user warm in both, each counting the
    cache's `nodes` (topology, masters, replicas); and a client."""
    upstream, counter = counted
    a, b = two_proxies(
        stack, tmp_path, vendor, upstream, scanner, CACHE_URL=url, PAGE_CACHE_TTL=PAGE_TTL
    )
    client = stack.enter_context(scanning_client(scanner, timeout=30))
    warm(a, b, vendor, scanner)
    assert counter.signins == Counter(USERS)  # b found a's tokens in the shared cache
    for proxy in (a, b):
        wait_until(partial(counts_nodes, client, proxy, *nodes), timeout=DEADLINE)
    return a, b, client


def warm(a: Served, b: Served, vendor: ReturningAIStandIn, scanner: LeakScanner) -> None:
    """Every user's token and the page in both processes' memory, one signin each."""
    with scanning_client(scanner, timeout=30) as client:
        for email in USERS:
            for proxy in (a, b):
                assert view(client, proxy, email, vendor) == ""


def rode_it_out(
    load: Load, probe_failures: list[str], counter: SigninCounter, proxies: tuple[Served, ...]
) -> None:
    """What an outage under load must leave: no failed page view or probe, one warning
    and one recovery line per process, and no warm user signed in again (their tokens
    stayed in each process)."""
    probes = [n for email, n in counter.signins.items() if email.startswith("probe")]
    fresh = sum(n for email, n in counter.signins.items() if email.startswith("fresh"))
    print(f"{load.views} page views, {fresh} of new users; probes' signins: {probes}")
    assert load.failures == []
    assert probe_failures == []
    for proxy in proxies:
        assert (lines(proxy, UNREACHABLE), lines(proxy, REACHABLE)) == (1, 1), proxy.url
    assert all(counter.signins[email] == 1 for email in USERS)


@pytest.mark.slow
def test_a_sentinel_failover_under_load_fails_no_page_view(
    tmp_path: Path,
    vendor: ReturningAIStandIn,
    counted: tuple[str, SigninCounter],
    leak_scanner: LeakScanner,
) -> None:
    counter = counted[1]
    with ExitStack() as stack:
        found = stack.enter_context(private_sentinel())
        a, b, client = warmed_pair(
            stack, tmp_path, vendor, counted, leak_scanner, found.url, ("sentinel", 1, 1)
        )

        with Load([a, b], vendor, leak_scanner) as load:
            load.more(200)
            found.master.kill()  # SIGKILL: no goodbye to the replica or the clients
            wait_until(lambda: found.master_port() == found.replica.port, timeout=DEADLINE)

            probe_failures = coalescing_resumes(a, b, counter.signins, vendor, leak_scanner)
            wait_until(lambda: recovered(a) and recovered(b), timeout=DEADLINE)
            new_master = f"127.0.0.1:{found.replica.port}"
            for proxy in (a, b):
                wait_until(
                    partial(names_master, client, proxy, found.service, new_master),
                    timeout=DEADLINE,
                )
                # The old master is down: the sentinels know no live replica now.
                wait_until(partial(counts_nodes, client, proxy, "sentinel", 1, 0), timeout=DEADLINE)
            load.more(200)  # and the load goes on over the new master

        degraded = [ready(client, proxy)["degraded"] for proxy in (a, b)]

    rode_it_out(load, probe_failures, counter, (a, b))
    assert degraded == [{}, {}]


@pytest.mark.slow
def test_a_cluster_node_restart_under_load_fails_no_page_view(
    tmp_path: Path,
    vendor: ReturningAIStandIn,
    counted: tuple[str, SigninCounter],
    leak_scanner: LeakScanner,
) -> None:
    counter = counted[1]
    with ExitStack() as stack:
        cluster = stack.enter_context(private_cluster())
        a, b, client = warmed_pair(
            stack, tmp_path, vendor, counted, leak_scanner, cluster.url, ("cluster", 3, 0)
        )

        with Load([a, b], vendor, leak_scanner) as load:
            load.more(200)
            # Down until the other two hold the cluster for failed (a third of the slots
            # gone: every command refused), then back with its slots, not its data.
            restart_node(cluster, cluster.nodes[0])

            probe_failures = coalescing_resumes(a, b, counter.signins, vendor, leak_scanner)
            wait_until(lambda: recovered(a) and recovered(b), timeout=DEADLINE)
            for proxy in (a, b):
                wait_until(partial(counts_nodes, client, proxy, "cluster", 3, 0), timeout=DEADLINE)
            load.more(200)  # and the load goes on over the whole cluster

        answers = [ready(client, proxy) for proxy in (a, b)]

    rode_it_out(load, probe_failures, counter, (a, b))
    for answer in answers:
        assert answer["degraded"] == {}
        assert answer["cache"] == {"topology": "cluster", "nodes": 3}


@pytest.mark.slow
def test_two_processes_share_a_user_limit_through_the_cluster(
    tmp_path: Path,
    vendor: ReturningAIStandIn,
    counted: tuple[str, SigninCounter],
    leak_scanner: LeakScanner,
) -> None:
    upstream, _ = counted
    with ExitStack() as stack:
        cluster = stack.enter_context(private_cluster())
        a, b = two_proxies(
            stack, tmp_path, vendor, upstream, leak_scanner, CACHE_URL=cluster.url, **SHARED_LIMIT
        )
        client = stack.enter_context(scanning_client(leak_scanner, timeout=30))
        answers = paced_past_the_limit(client, [a, b])

    assert_shared(answers, bound(2))
    for answer in answers:
        if answer.status_code == 200:
            assert token_in(answer.text)


# --- the topology as a metric ----------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    with private_cluster() as found:
        yield found


def scraped_nodes(proxy: Proxy) -> dict[tuple[str, str], float]:
    """widget_proxy_cache_nodes from an in-process proxy's /metrics."""
    return parse_nodes(proxy.client.get("/metrics").text)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["memory", "single", "sentinel", "cluster"])
def test_the_metrics_count_the_cache_nodes_by_topology_and_role(
    kind: str, cluster: PrivateCluster, make_proxy: Callable[..., Proxy]
) -> None:
    with ExitStack() as stack:
        urls = {"memory": "memory://", "cluster": cluster.url}
        if kind == "single":
            urls[kind] = stack.enter_context(private_redis()).url
        elif kind == "sentinel":
            urls[kind] = stack.enter_context(private_sentinel()).url
        proxy = make_proxy(CACHE_URL=urls[kind])
        found = scraped_nodes(proxy)  # the scrape counts them, before anything else asked
        assert proxy.get("/widget", "t@example.com").status_code == 200
        topology = proxy.client.get("/readyz").json()["cache"]["topology"]

    expected = {
        "memory": {},  # no cache server, no series
        "single": {("single", "master"): 1, ("single", "replica"): 0},
        "sentinel": {("sentinel", "master"): 1, ("sentinel", "replica"): 1},
        "cluster": {("cluster", "master"): 3, ("cluster", "replica"): 0},
    }[kind]
    assert found == expected
    assert topology == kind


class CountedNodes:
    """The shared part of a tiered store, as far as the census asks it: how often."""

    def __init__(self, answers: list[dict[str, int] | Exception]) -> None:
        self.answers = answers
        self.asked = 0

    async def nodes(self) -> dict[str, int]:
        answer = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        if isinstance(answer, Exception):
            raise answer
        return answer

    def topology(self) -> dict[str, object]:
        return {"topology": "sentinel", "service": "s", "master": None}


@pytest.mark.anyio
async def test_the_census_counts_at_most_every_few_seconds_and_keeps_the_last_count() -> None:
    shared = CountedNodes([{"master": 1, "replica": 2}, RedisConnectionError(), {"master": 0}])
    metrics = Metrics()
    store = TieredStore(MemoryStore(), shared, where="x", metrics=metrics)  # type: ignore[arg-type]
    clock = Clock()
    census = CacheCensus(store, metrics, every=5, clock=clock)

    def gauge(role: str) -> float | None:
        labels = {"topology": "sentinel", "role": role}
        return metrics.registry.get_sample_value("widget_proxy_cache_nodes", labels)

    seen = []
    for step in (0, 1, 4, 5, 6, 10):  # seconds since the first ask
        clock.now = 1_000_000.0 + step
        await census.refresh()
        seen.append((shared.asked, gauge("master"), gauge("replica")))

    assert seen == [
        (1, 1, 2),
        (1, 1, 2),  # within 5 s of the last count: not asked
        (1, 1, 2),
        (2, 1, 2),  # asked, and the sentinels didn't answer: the last count stays
        (2, 1, 2),
        (3, 0, 0),  # no master up (and no replica named): 0
    ]
    assert store.degraded() is None  # asking the sentinels is not a call to the master
