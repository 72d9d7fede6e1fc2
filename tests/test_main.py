"""The two commands a merchant runs, as real processes."""

from __future__ import annotations

import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest

from tests.support import LeakScanner, free_port, scanning_client, wait_until
from tests.support.processes import running, serve
from widget_proxy.providers.returningai import ReturningAIStandIn


@pytest.mark.slow
def test_demo_runs_with_no_configuration(tmp_path: Path, leak_scanner: LeakScanner) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    with (
        running(["demo", "--port", str(port)], tmp_path, base, leak_scanner),
        scanning_client(leak_scanner, base_url=base) as client,
    ):
        assert "Sign in" in client.get("/").text
        form = client.get("/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf is not None
        login = client.post(
            "/login", data={"email": "ann@example.com", "next": "/widget", "csrf": csrf.group(1)}
        )
        assert login.status_code == 303
        assert login.headers["location"] == "/widget"
        widget = client.get("/widget")

    assert widget.status_code == 200
    assert re.search(r'token: "[\w-]+\.[\w-]+\.[\w-]+"', widget.text)


@pytest.mark.slow
def test_serve_reads_a_dotenv_file(
    tmp_path: Path, vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner
) -> None:
    with (
        serve(tmp_path, vendor, upstream, leak_scanner) as proxy,
        scanning_client(leak_scanner) as c,
    ):
        response = c.get(f"{proxy.url}/widget", headers=proxy.cookie("ann@example.com"))

    assert response.status_code == 200
    assert 'widgetId: "shop-store"' in response.text
    assert vendor.api_key not in response.text


@pytest.mark.slow
def test_sigterm_lets_requests_in_flight_finish(
    tmp_path: Path, vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner
) -> None:
    vendor.signin_delay = 1.5
    with serve(tmp_path, vendor, upstream, leak_scanner) as proxy:
        with ThreadPoolExecutor(1) as pool, scanning_client(leak_scanner) as client:
            pending = pool.submit(
                client.get, f"{proxy.url}/widget", headers=proxy.cookie("ann@example.com")
            )
            wait_until(lambda: vendor.calls["signin"] == 1)
            started = time.monotonic()
            proxy.process.send_signal(signal.SIGTERM)
            response = pending.result(timeout=20)
        assert proxy.process.wait(timeout=20) in (0, -signal.SIGTERM)

    assert response.status_code == 200  # finished, not cut off
    assert time.monotonic() - started < 10


@pytest.mark.slow
def test_shutdown_timeout_bounds_the_wait(
    tmp_path: Path, vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner
) -> None:
    vendor.signin_delay = 20
    with (
        serve(tmp_path, vendor, upstream, leak_scanner, SHUTDOWN_TIMEOUT="1") as proxy,
        ThreadPoolExecutor(1) as pool,
        scanning_client(leak_scanner) as client,
    ):
        pending = pool.submit(
            client.get, f"{proxy.url}/widget", headers=proxy.cookie("ann@example.com")
        )
        wait_until(lambda: vendor.calls["signin"] == 1)
        started = time.monotonic()
        proxy.process.send_signal(signal.SIGTERM)
        proxy.process.wait(timeout=20)
        exited = time.monotonic() - started
        try:
            status = pending.result(timeout=20).status_code
        except httpx2.HTTPError:
            status = None  # the connection was closed under it

    assert exited < 5  # 1 s of grace, not the 20 s the request wanted
    assert status is None or status >= 500
