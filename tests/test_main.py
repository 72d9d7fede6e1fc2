"""The commands a merchant runs, as real processes: the demo (with the settings `serve`
reads), `serve` with its .env file, its shutdown, its log level and its metrics folder,
and every command's output to a reader that left."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from base64 import urlsafe_b64decode
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest

from tests.support import (
    VALID,
    FaultyUpstream,
    LeakScanner,
    Respond,
    free_port,
    scanning_client,
    wait_until,
)
from tests.support.processes import (
    answers,
    clean_environ,
    printing,
    run_check,
    running,
    serve,
)
from widget_proxy.__main__ import main, prepare_multiprocess_metrics
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
def test_the_demo_reads_the_settings_serve_reads(tmp_path: Path, leak_scanner: LeakScanner) -> None:
    """A lifetime from the environment and a margin from .env reach the demo's tokens;
    it prints its stand-in's settings, on which `check` passes."""
    (tmp_path / ".env").write_text("TOKEN_REFRESH_MARGIN=30\n")
    port = free_port()
    args = ["demo", "--provider", "hissuno", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"

    with printing(args, tmp_path, leak_scanner, {"HISSUNO_TOKEN_TTL": "90"}) as stand_in:
        wait_until(lambda: answers(f"{base}/healthz"), timeout=30)
        with scanning_client(leak_scanner, base_url=base) as client:
            client.post("/login", data=_login(client, "ann@example.com"))
            answer = client.post("/widget/token").json()
        checked = run_check(tmp_path, stand_in, "a@example.com", dotenv=False)

    payload = answer["token"].split(".")[1]
    claims = json.loads(urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["exp"] - claims["iat"] == 90  # HISSUNO_TOKEN_TTL, not the 24 h default
    assert 55 <= answer["expiresIn"] <= 60  # served until exp - TOKEN_REFRESH_MARGIN
    assert stand_in["TOKEN_PROVIDER"] == "hissuno"
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.splitlines()[-1] == "All checks passed."


def _login(client: httpx2.Client, email: str) -> dict[str, str]:
    form = client.get("/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    return {"email": email, "next": "/", "csrf": csrf.group(1)}


@pytest.mark.parametrize(
    "args",
    # (argparse's --help already ignores a write that fails)
    [["check"], ["standin", "--provider", "neuroon"], ["demo", "--port", "0"]],
    ids=["check", "standin", "demo"],
)
def test_a_reader_that_left_ends_the_command_quietly(args: list[str], tmp_path: Path) -> None:
    """`widget-proxy check | head -1`: no traceback, the status a shell's tools give."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    try:
        result = subprocess.run(
            [sys.executable, "-m", "widget_proxy", *args],
            cwd=tmp_path,
            env=clean_environ(),
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)

    assert result.returncode == 128 + signal.SIGPIPE, result.stderr
    assert "Traceback" not in result.stderr
    assert "Exception ignored" not in result.stderr


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


def lines(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def request_lines(log: Path) -> list[dict[str, object]]:
    return [line for line in lines(log) if line.get("path") == "/widget"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("level", "ok_logged"), [("INFO", True), ("WARNING", False)], ids=["info", "warning"]
)
def test_log_level_and_5xx_request_lines_at_warning(
    tmp_path: Path,
    vendor: ReturningAIStandIn,
    faulty: FaultyUpstream,
    leak_scanner: LeakScanner,
    level: str,
    ok_logged: bool,
) -> None:
    with (
        serve(tmp_path, vendor, faulty.url, leak_scanner, LOG_LEVEL=level) as proxy,
        scanning_client(leak_scanner, base_url=proxy.url) as client,
    ):
        assert client.get("/widget", headers=proxy.cookie("ok@example.com")).status_code == 200
        faulty.faults.active["signin"] = Respond(500)
        failed = client.get("/widget", headers=proxy.cookie("failed@example.com"))
        assert failed.status_code == 502
        wait_until(lambda: any(line["status"] == 502 for line in request_lines(proxy.log)))
        logged = request_lines(proxy.log)

    statuses = {line["status"]: line["level"] for line in logged}
    assert statuses[502] == "warning"  # a 5xx answer is worth a look, whatever LOG_LEVEL
    assert (200 in statuses) is ok_logged  # a 200 is INFO: below LOG_LEVEL=WARNING
    if ok_logged:
        assert statuses[200] == "info"


def test_the_metrics_folder_is_emptied_before_workers_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    stale = folder / "counter_1234.db"
    stale.write_bytes(b"an earlier run's counts")
    kept = folder / "notes.txt"
    kept.write_text("not ours")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))

    prepare_multiprocess_metrics()

    assert not stale.exists()  # an earlier run's counts are not this run's
    assert kept.exists()  # only prometheus-client's files are removed
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    prepare_multiprocess_metrics()  # unset: a fresh folder of its own
    made = Path(os.environ.pop("PROMETHEUS_MULTIPROC_DIR"))
    assert made.is_dir()
    assert not list(made.iterdir())


def test_serve_under_granian_without_granian_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    for name, value in VALID.items():
        monkeypatch.setenv(name, value)
    for name in [n for n in sys.modules if n.startswith(("granian.", "widget_proxy.granian"))]:
        monkeypatch.delitem(sys.modules, name)  # imported by other tests, found here first
    monkeypatch.setitem(sys.modules, "granian", None)  # as if not installed

    status = main(["serve", "--server", "granian", "--port", "0"])

    assert status == 2
    assert capsys.readouterr().err == (
        "widget-proxy: --server granian needs granian: pip install 'widget-proxy[granian]'\n"
    )
