"""`widget-proxy serve --server granian` as a real process: granian's supervisor and
workers serving the proxy as serve does under uvicorn (docs/serving.md): its workers,
SIGTERM's drain and its end, the request head's bound, the mount path and the proxy
headers. (SIGHUP: tests/test_reload.py; the README's nginx sample and the metrics added
up across workers: tests/suites/test_operations.py; each under both servers.)"""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest
import redis

from tests.support import EMAIL, LeakScanner, scanning_client, wait_until
from tests.support.metrics import at_once
from tests.support.processes import Served, serve
from tests.support.wire import exchange, flood
from widget_proxy.granian_server import read_buffer
from widget_proxy.providers.returningai import ReturningAIStandIn
from widget_proxy.security.bounded import DEFAULT_MAX_HEAD


@contextmanager
def serving(
    server: str,
    tmp_path: Path,
    vendor: ReturningAIStandIn,
    upstream: str,
    scanner: LeakScanner,
    *args: str,
    **env: str,
) -> Iterator[Served]:
    """`serve` under `server`; with granian, once every worker's app has started."""
    if server == "granian":
        with granian(tmp_path, vendor, upstream, scanner, *args, **env) as proxy:
            yield proxy
    else:
        with serve(tmp_path, vendor, upstream, scanner, *args, **env) as proxy:
            yield proxy


@contextmanager
def granian(
    tmp_path: Path,
    vendor: ReturningAIStandIn,
    upstream: str,
    scanner: LeakScanner,
    *args: str,
    **env: str,
) -> Iterator[Served]:
    with serve(tmp_path, vendor, upstream, scanner, "--server", "granian", *args, **env) as proxy:
        workers = int(args[args.index("--workers") + 1]) if "--workers" in args else 1
        wait_until(lambda: len(started(proxy.log)) == workers, timeout=30)
        yield proxy


def lines(log: Path) -> list[dict[str, object]]:
    found = []
    for line in log.read_text().splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue  # a line still being written
    return found


def started(log: Path) -> list[str]:
    """The workers whose app has started (lifespan run, SIGHUP handled), by pid."""
    pattern = re.compile(r"Application startup complete \(granian worker (\d+)\)")
    return [m.group(1) for line in lines(log) if (m := pattern.search(str(line["message"])))]


def rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert found is not None
    return int(found.group(1)) * 1024


@pytest.mark.slow
def test_two_workers_serve_each_with_request_ids_of_its_own(
    tmp_path: Path, vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner
) -> None:
    """Each worker is a fresh interpreter: forked, both drew the supervisor's prefix.
    (Their metrics added up: tests/suites/test_operations.py, under both servers.)"""
    with (
        granian(tmp_path, vendor, upstream, leak_scanner, "--workers", "2") as proxy,
        scanning_client(leak_scanner, base_url=proxy.url, timeout=30) as client,
    ):
        statuses = at_once(client, "/widget", [proxy.cookie(f"w{i}@x.io") for i in range(40)])
        ready = client.get("/readyz")

    assert statuses == [200] * 40
    assert ready.json()["ready"] is True
    assert len(set(started(proxy.log))) == 2
    ids = [str(line["request_id"]) for line in lines(proxy.log) if line.get("path") == "/widget"]
    assert len(ids) == len(set(ids)) == 40
    assert len({i[:8] for i in ids}) == 2


@pytest.mark.slow
def test_sigterm_lets_a_request_in_flight_finish_and_refuses_new_ones(
    tmp_path: Path, vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner
) -> None:
    vendor.signin_delay = 1.5
    with granian(tmp_path, vendor, upstream, leak_scanner) as proxy:
        with ThreadPoolExecutor(1) as pool, scanning_client(leak_scanner) as client:
            pending = pool.submit(client.get, f"{proxy.url}/widget", headers=proxy.cookie(EMAIL))
            wait_until(lambda: vendor.calls["signin"] == 1)
            started_at = time.monotonic()
            proxy.process.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            with pytest.raises(httpx2.ConnectError):
                client.get(f"{proxy.url}/healthz")  # no longer accepted
            response = pending.result(timeout=20)
        assert proxy.process.wait(timeout=20) == 0
        exited = time.monotonic() - started_at

    assert response.status_code == 200  # finished, not cut off
    assert 1.0 < exited < 10


def rate_counts(url: str) -> list[int]:
    """Every rate key's count in the Redis at `url`, ascending."""
    client = redis.Redis.from_url(url)
    try:
        keys = [k for k in client.scan_iter(count=1000) if client.type(k) == b"hash"]
        return sorted(sum(int(v) for v in client.hvals(k)) for k in keys)
    finally:
        client.close()


@pytest.mark.slow
def test_shutdown_timeout_cancels_what_still_runs_then_the_app_closes(
    tmp_path: Path,
    vendor: ReturningAIStandIn,
    upstream: str,
    leak_scanner: LeakScanner,
    shared_redis: str,
) -> None:
    """Past SHUTDOWN_TIMEOUT the request still running is cancelled, and the lifespan's
    shutdown runs: the rate counts' last sync reaches Redis (killed, they would not)."""
    settings = {
        "SHUTDOWN_TIMEOUT": "1",
        "UPSTREAM_READ_TIMEOUT": "30",  # the slow signin would take its 20 s
        "UPSTREAM_DEADLINE": "30",
        "CACHE_URL": shared_redis,
        "RATE_LIMIT_SYNC_INTERVAL": "3600",  # no sync but the first and the last
        "RATE_LIMIT_PER_MINUTE": "1000",
        "RATE_LIMIT_IP_PER_MINUTE": "1000",
    }
    with (
        granian(tmp_path, vendor, upstream, leak_scanner, **settings) as proxy,
        ThreadPoolExecutor(1) as pool,
        scanning_client(leak_scanner, base_url=proxy.url, timeout=30) as client,
    ):
        vendor.signin_delay = 20
        pending = pool.submit(client.get, "/widget", headers=proxy.cookie("slow@example.com"))
        wait_until(lambda: vendor.calls["signin"] == 1)
        vendor.signin_delay = 0
        for _ in range(10):
            assert client.get("/widget", headers=proxy.cookie(EMAIL)).status_code == 200
        started_at = time.monotonic()
        proxy.process.send_signal(signal.SIGTERM)
        assert proxy.process.wait(timeout=20) == 0
        exited = time.monotonic() - started_at
        try:
            status: int | None = pending.result(timeout=20).status_code
        except httpx2.HTTPError:
            status = None

    assert exited < 5  # 1 s of grace, not the 20 s the request wanted
    assert status is None or status >= 500
    counts = rate_counts(shared_redis)  # the slow user's, EMAIL's, their address's
    assert counts[:2] == [1, 10]  # all of EMAIL's: the last sync ran (it sent 9 of them)
    assert counts[2] >= 11  # and the readiness probes'
    messages = [str(line["message"]) for line in lines(proxy.log)]
    assert "SHUTDOWN_TIMEOUT passed: cancelled 1 running request(s)" in messages


@pytest.mark.slow
def test_a_huge_request_head_is_refused_and_memory_stays_flat(
    tmp_path: Path, vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner
) -> None:
    """hyper's read buffer bounds the head (`http1_buffer_size`: the head bound rounded
    up to a power of two, 64 KiB at the defaults). Within it the app's own limits answer
    (414, 431, with their page and log line); past it hyper answers a bare 414 or 431
    and closes the connection, before the rest is read."""
    assert read_buffer(DEFAULT_MAX_HEAD) == 64 * 1024
    block = 32 * 1024 * 1024
    with (
        granian(tmp_path, vendor, upstream, leak_scanner) as proxy,
        scanning_client(leak_scanner, base_url=proxy.url, timeout=60) as client,
    ):
        (worker,) = map(int, started(proxy.log))
        cookie = proxy.cookie(EMAIL)["cookie"]
        assert client.get("/widget", headers={"cookie": cookie}).status_code == 200
        before = rss(worker)
        json_head = b" HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\n"
        target = exchange(proxy.url, b"GET /" + b"a" * 60_000 + json_head)
        past = exchange(proxy.url, b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        head = b"GET /widget HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n"
        head += f"Cookie: {cookie}; junk=".encode()
        for _ in range(5):
            refused = flood(proxy.url, head, block)
            assert refused.answer.startswith(b"HTTP/1.1 431 "), refused.answer[:100]
            assert b"connection: close" in refused.answer
            assert refused.sent < block / 2, refused.sent  # the rest was never read
            assert client.get("/widget", headers={"cookie": cookie}).status_code == 200
        headers = b"".join(b"X-H%d: v\r\n" % i for i in range(100))
        many = exchange(proxy.url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        after = rss(worker)

    assert target.startswith(b"HTTP/1.1 414 ")  # the app's: within the buffer
    assert b'"error":"request_target_too_long"' in target
    assert past.startswith(b"HTTP/1.1 414 ")  # hyper's: bare, the connection closed
    assert b"connection: close\r\ncontent-length: 0\r\n" in past
    assert many.startswith(b"HTTP/1.1 431 ")  # hyper takes 100 header lines at most
    assert after - before < 50 * 1024 * 1024  # none of it was kept


SERVERS = pytest.mark.parametrize("server", ["uvicorn", "granian"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("server", "trusted", "client_ip"),
    [
        ("uvicorn", "127.0.0.1", "203.0.113.9"),
        ("granian", "127.0.0.1", "203.0.113.9"),
        ("granian", "10.0.0.1", "127.0.0.1"),  # the direct peer, not the header's
    ],
)
def test_the_mount_path_and_the_proxy_headers_are_read_as_under_uvicorn(
    tmp_path: Path,
    vendor: ReturningAIStandIn,
    upstream: str,
    leak_scanner: LeakScanner,
    server: str,
    trusted: str,
    client_ip: str,
) -> None:
    """A reverse proxy strips `/rewards`, the app's links and redirects put it back; the
    client's address is the forwarded one from an allowed peer only."""
    args = ("--server", server, "--root-path", "/rewards")
    args += ("--proxy-headers", "--forwarded-allow-ips", trusted)
    forwarded = {"x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https"}
    with (
        serving(
            server, tmp_path, vendor, upstream, leak_scanner, *args, LOGIN_URL="/login"
        ) as proxy,
        scanning_client(leak_scanner, base_url=proxy.url) as client,
    ):
        anonymous = client.get("/widget")
        page = client.get("/widget", headers={**proxy.cookie(EMAIL), **forwarded})

    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=%2Frewards%2Fwidget"
    assert page.status_code == 200
    (line,) = [
        line
        for line in lines(proxy.log)
        if line["logger"] == "widget_proxy.request" and line["status"] == 200
    ]
    assert line["path"] == "/rewards/widget"
    assert line["client_ip"] == client_ip


@pytest.mark.slow
@SERVERS
def test_sigterm_waits_for_a_request_whose_client_has_gone(
    tmp_path: Path,
    vendor: ReturningAIStandIn,
    upstream: str,
    leak_scanner: LeakScanner,
    server: str,
) -> None:
    """granian's drain ends with the last connection; the app's work for a client that
    left goes on, and is waited for (as uvicorn waits for its tasks)."""
    with (
        serving(server, tmp_path, vendor, upstream, leak_scanner, "--server", server) as proxy,
        scanning_client(leak_scanner, base_url=proxy.url, timeout=0.5) as client,
    ):
        vendor.signin_delay = 2
        with pytest.raises(httpx2.ReadTimeout):
            client.get("/widget", headers=proxy.cookie(EMAIL))
        proxy.process.send_signal(signal.SIGTERM)
        assert proxy.process.wait(timeout=20) in (0, -signal.SIGTERM)  # uvicorn re-raises it

    (line,) = [line for line in lines(proxy.log) if line.get("path") == "/widget"]
    assert line["status"] == 200
    assert float(str(line["duration_ms"])) > 1500
