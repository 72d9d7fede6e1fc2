"""The two commands a merchant runs, as real processes."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2

from app.demo import DemoUpstream
from app.servers import bind
from tests.support import LeakScanner, session_cookie, wait_until


def free_port() -> int:
    with bind() as sock:
        port: int = sock.getsockname()[1]
    return port


def answers(url: str) -> bool:
    try:
        httpx2.get(url, timeout=1)
    except httpx2.TransportError:
        return False
    return True


@contextmanager
def running(args: list[str], cwd: Path, url: str, scanner: LeakScanner) -> Iterator[None]:
    log = cwd / "stderr.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", *args],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            wait_until(lambda: answers(url) or process.poll() is not None, timeout=30)
            assert process.poll() is None, log.read_text()
            yield
        finally:
            process.send_signal(signal.SIGTERM)
            # uvicorn shuts down gracefully, then re-raises the signal it caught.
            assert process.wait(timeout=20) in (0, -signal.SIGTERM)
            scanner.check("the process's log", log.read_text())


def test_demo_runs_with_no_configuration(tmp_path: Path, leak_scanner: LeakScanner) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    with (
        running(["demo", "--port", str(port)], tmp_path, base, leak_scanner),
        httpx2.Client(base_url=base) as client,
    ):
        assert "Sign in" in client.get("/").text
        login = client.post("/login", data={"email": "ann@example.com", "next": "/widget"})
        assert login.status_code == 303
        assert login.headers["location"] == "/widget"
        widget = client.get("/widget")

    assert widget.status_code == 200
    assert re.search(r'token: "[\w-]+\.[\w-]+\.[\w-]+"', widget.text)


def test_serve_reads_a_dotenv_file(
    tmp_path: Path, vendor: DemoUpstream, upstream: str, leak_scanner: LeakScanner
) -> None:
    port = free_port()
    secret = "serve-test-secret-" + "x" * 32
    leak_scanner.add(secret)
    (tmp_path / ".env").write_text(
        f"WIDGET_BASE_URL={upstream}\n"
        f"WIDGET_API_KEY={vendor.api_key}\n"
        f"WIDGET_COMMUNITY_ID={vendor.community_id}\n"
        "WIDGET_ID=shop-store\n"
        f"SESSION_SECRET={secret}\n"
    )
    cookie = session_cookie(secret, {"email": "ann@example.com"})
    base = f"http://127.0.0.1:{port}"

    with running(["serve", "--port", str(port)], tmp_path, base, leak_scanner):
        response = httpx2.get(f"{base}/widget", headers={"cookie": f"session={cookie}"})

    assert response.status_code == 200
    assert 'widgetId: "shop-store"' in response.text
    assert vendor.api_key not in response.text
