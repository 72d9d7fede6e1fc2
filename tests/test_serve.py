"""What `widget-proxy serve` logs, at which level, and how its start-up guards hold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import FaultyUpstream, LeakScanner, Respond, scanning_client, wait_until
from tests.support.processes import serve
from widget_proxy.__main__ import prepare_multiprocess_metrics
from widget_proxy.providers.returningai import ReturningAIStandIn


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


def test_serve_refuses_proxy_headers_with_header_identity(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "WIDGET_BASE_URL": "https://widgets.example.com",
        "WIDGET_API_KEY": "k",
        "WIDGET_COMMUNITY_ID": "c",
        "WIDGET_ID": "w",
        "SESSION_SECRET": "s" * 32,
        "IDENTITY_SOURCE": "header",
        "IDENTITY_PROXIES": "127.0.0.1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "widget_proxy", "serve", "--port", "0", "--proxy-headers"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert "--proxy-headers hides the direct peer that IDENTITY_SOURCE=header" in result.stderr


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
