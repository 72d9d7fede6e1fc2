"""`widget-proxy forget` across real proxy processes, on every store topology.

Two `widget-proxy serve` processes share a Redis (one server, a Sentinel's master, a
Cluster); or one `serve` runs two workers on `memory://`. Each user holds one session
cookie, as a browser does (so what is forgotten is the session memo's entry, not a
cookie never seen again). The stand-in vendor issues a distinct token at each signin
and counts them: after `forget` returns, within a second no process serves the
forgotten user's token, their next view signs in once across the processes, and
another user is untouched. A forget no process hears of (written, never published:
as for a process whose subscription was down) is still applied at the next sync, and
so is one written just after every subscription was killed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx2
import pytest
import redis

from tests.support import LeakScanner, scanning_client, session_cookie, token_in, wait_until
from tests.support.processes import SERVED_SECRET, Served, run_forget, serve
from tests.support.redis import private_cluster, private_redis, private_sentinel
from widget_proxy.cache import Keys
from widget_proxy.cache.forgets import RedisForgets
from widget_proxy.cache.revocation import PURPOSE, Revocations
from widget_proxy.cache.topology import redis_client
from widget_proxy.providers.returningai import ReturningAIStandIn

GONE, KEPT = "gone@example.com", "kept@example.com"
INTERVAL = 0.5  # RATE_LIMIT_SYNC_INTERVAL: how often a process reads what was forgotten
BOUND = 1.0  # docs/revocation.md: once forget returned, nothing forgotten is served after


@contextmanager
def redis_of(kind: str) -> Iterator[tuple[str, list[int]]]:
    """A private Redis of `kind`: its CACHE_URL and its data nodes' ports."""
    if kind == "single":
        with private_redis() as server:
            yield server.url, [server.port]
    elif kind == "sentinel":
        with private_sentinel() as sentinel:
            yield sentinel.url, [sentinel.master.port]
    else:
        with private_cluster() as cluster:
            yield cluster.url, [n.port for n in cluster.nodes]


class Users:
    """One session cookie per user, kept for the whole test, as a browser keeps it."""

    def __init__(self, client: httpx2.Client) -> None:
        self.client = client
        self.cookies = {
            e: f"session={session_cookie(SERVED_SECRET, {'email': e})}" for e in (GONE, KEPT)
        }

    def token(self, url: str, email: str) -> str:
        answer = self.client.get(f"{url}/widget", headers={"cookie": self.cookies[email]})
        assert answer.status_code == 200, answer.text
        return token_in(answer.text)


def forget_command(cwd: Path, *args: str) -> None:
    """`widget-proxy forget …` in `cwd` (its `.env` configures it); must succeed."""
    done = run_forget(cwd, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "@" not in done.stdout + done.stderr  # no email said back


def both_workers(users: Users, url: str, email: str) -> set[str]:
    """The user's token in each worker: views on connections of their own until two
    tokens were seen (each worker signs in for itself: its own memory)."""
    seen: set[str] = set()
    for _ in range(200):  # the kernel hands a connection to either worker, unevenly
        seen.add(users.token(url, email))
        if len(seen) == 2:
            return seen
    raise AssertionError(f"one worker answered 200 views: {len(seen)} token(s)")


def within(seconds: float, predicate: Callable[[], bool]) -> None:
    start = time.monotonic()
    wait_until(predicate, timeout=seconds + 5)  # (to see by how much, if it is late)
    took = time.monotonic() - start
    assert took <= seconds, f"{took:.2f} s"


def written_forget(url: str, email: str, *, published: bool) -> None:
    """A forget written to Redis as `forget` writes it; unless `published`, its message
    goes where nobody listens: what a process whose subscription was down sees."""

    async def write() -> None:
        client = redis_client(url)
        try:
            log = RedisForgets(client, keep=7260)
            if not published:
                log.channel = "widget-proxy:nobody-listens"
            hasher = Keys(SERVED_SECRET).hasher(PURPOSE)
            await Revocations(hasher, forget_log=log).forget([email])
        finally:
            await client.aclose()

    asyncio.run(write())


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["single", "sentinel", "cluster"])
def test_forget_reaches_both_processes_within_a_second(
    kind: str, tmp_path: Path, vendor: ReturningAIStandIn, upstream: str,
    leak_scanner: LeakScanner,
) -> None:  # fmt: skip
    with ExitStack() as stack:
        url, ports = stack.enter_context(redis_of(kind))
        proxies: list[Served] = []
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            env = {"CACHE_URL": url, "RATE_LIMIT_SYNC_INTERVAL": str(INTERVAL)}
            proxies.append(
                stack.enter_context(serve(tmp_path / name, vendor, upstream, leak_scanner, **env))
            )
        users = Users(stack.enter_context(scanning_client(leak_scanner, timeout=30)))
        a, b = (p.url for p in proxies)
        old = {users.token(p, GONE) for p in (a, b)}
        kept = {users.token(p, KEPT) for p in (a, b)}
        assert len(old) == len(kept) == 1  # b found a's tokens in Redis
        assert vendor.calls["signin"] == 2

        forget_command(tmp_path / "a", "--email", GONE)
        within(BOUND, lambda: not old & {users.token(p, GONE) for p in (a, b)})
        new = {users.token(p, GONE) for p in (a, b)}
        assert len(new) == 1
        assert vendor.calls["signin"] == 3  # the next view signed in once, for both
        assert {users.token(p, KEPT) for p in (a, b)} == kept  # another user: untouched

        # A forget nobody hears of: each process reads it at its next sync.
        written_forget(url, GONE, published=False)
        within(INTERVAL + BOUND, lambda: not new & {users.token(p, GONE) for p in (a, b)})
        newer = {users.token(p, GONE) for p in (a, b)}
        assert vendor.calls["signin"] == 4

        # Every subscription killed, then a forget at once: heard, or read at the sync.
        for port in ports:
            with redis.Redis(port=port) as node:
                node.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        written_forget(url, GONE, published=True)
        within(INTERVAL + BOUND, lambda: not newer & {users.token(p, GONE) for p in (a, b)})
        assert vendor.calls["signin"] == 5
        assert {users.token(p, KEPT) for p in (a, b)} == kept


@pytest.mark.slow
def test_forget_reaches_every_worker_on_memory(
    tmp_path: Path, vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner
) -> None:
    with serve(
        tmp_path, vendor, upstream, leak_scanner, "--workers", "2", CACHE_URL="memory://"
    ) as proxy:
        # A connection of its own for each view: either worker may take it.
        users = Users(stack_client := scanning_client(leak_scanner, timeout=30, limits=FRESH))
        with stack_client:
            old, kept = both_workers(users, proxy.url, GONE), both_workers(users, proxy.url, KEPT)

            forget_command(tmp_path, "--email", GONE, "--url", proxy.url)
            time.sleep(BOUND)
            assert not old & both_workers(users, proxy.url, GONE)
            assert both_workers(users, proxy.url, KEPT) == kept
            assert vendor.calls["signin"] == 6  # each worker: each user, then the forgotten


FRESH = httpx2.Limits(max_keepalive_connections=0)
