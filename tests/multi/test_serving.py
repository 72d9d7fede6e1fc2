"""`widget-proxy serve --config FILE` as a real process, against the two stand-ins: both
widgets from one process, every mistake of the file reported together (exit 2), and
SIGHUP reloading the file all or nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from bench.processes import free_port
from bench.users import session_cookie
from tests.support import EMAIL, LeakScanner, wait_until
from tests.support.configs import TwoVendors, toml, two_vendors
from tests.support.processes import clean_environ, run_forget, running
from widget_proxy.config import WidgetsConfig
from widget_proxy.multi.serving import changed_widgets


@pytest.fixture
def vendors() -> Iterator[TwoVendors]:
    with two_vendors() as found:
        yield found


def _serving(
    vendors: TwoVendors, tmp_path: Path
) -> tuple[Path, str, list[str], LeakScanner, dict[str, str]]:
    """The file, the URL, `serve --config`'s arguments, its log's scanner, a session."""
    config = vendors.write(tmp_path / "widgets.toml")
    scanner = LeakScanner()
    scanner.add(vendors.secret, *_keys(vendors))
    base = f"http://127.0.0.1:{free_port()}"
    args = ["serve", "--port", base.rsplit(":", 1)[1], "--config", str(config)]
    return (
        config,
        base,
        args,
        scanner,
        {"session": session_cookie(vendors.secret, {"email": EMAIL})},
    )


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_one_process_serves_both_vendors(vendors: TwoVendors, tmp_path: Path, server: str) -> None:
    config, base, args, scanner, cookie = _serving(vendors, tmp_path)
    args += ["--server", server]
    with (
        running(args, tmp_path, base, scanner) as process,
        httpx2.Client(base_url=base, cookies=cookie) as client,
    ):
        assert client.get("/rewards/widget").status_code == 200
        assert "demo-project" in client.get("/support/widget").text
        assert client.get("/readyz").json()["ready"] is True

        # A good file: swapped in, the change named by widget and key.
        vendors.widgets["rewards"]["WIDGET_COLOR"] = "dark"
        vendors.write(config)
        process.send_signal(signal.SIGHUP)
        log = tmp_path / "stderr.log"
        wait_until(lambda: "widgets.rewards: WIDGET_COLOR" in log.read_text())

        # A bad file: refused whole, every problem logged, the widgets still serve.
        config.write_text(toml(vendors.shared, {**vendors.widgets, "support": {
            "mount": "/rewards/support", "TOKEN_PROVIDER": "hissuno"}}))  # fmt: skip
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: "settings reload refused" in log.read_text())
        refused = log.read_text().split("settings reload refused", 1)[1]
        assert "widgets.support: HISSUNO_SECRET_KEY: required" in refused
        assert "widgets.support: mount: /rewards/support is inside /rewards" in refused
        assert client.get("/support/widget").status_code == 200
    scanner.check("the process's log", (tmp_path / "stderr.log").read_text())


def test_mistakes_are_reported_together(vendors: TwoVendors, tmp_path: Path) -> None:
    vendors.shared["RATE_LIMT_PER_MINUTE"] = "10"
    vendors.widgets["support"]["HISSUNO_SECRET_KEY"] = "not-a-key"
    vendors.widgets["support"]["WIDGET_ID"] = "w-1"
    vendors.widgets["rewards"]["mount"] = "/support"
    config = vendors.write(tmp_path / "widgets.toml")
    refused = subprocess.run(
        [sys.executable, "-m", "widget_proxy", "serve", "--port", "0", "--config", str(config)],
        cwd=tmp_path, env=clean_environ(), capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert refused.returncode == 2
    for problem in (
        "RATE_LIMT_PER_MINUTE: is not a setting; did you mean RATE_LIMIT_PER_MINUTE?",
        "widgets.support: HISSUNO_SECRET_KEY: must be sk_live_",
        "widgets.support: WIDGET_ID: is a setting of TOKEN_PROVIDER=returningai",
        "widgets.support: mount: /support is widgets.rewards's mount too",
    ):
        assert problem in refused.stderr
    assert "not-a-key" not in refused.stderr


def test_the_variable_names_the_file(vendors: TwoVendors, tmp_path: Path) -> None:
    config = vendors.write(tmp_path / "widgets.toml")
    vendors.widgets["support"]["HISSUNO_PROJECT_ID"] = "../up"
    vendors.write(config)
    env = clean_environ(WIDGET_PROXY_CONFIG=str(config))
    refused = subprocess.run(
        [sys.executable, "-m", "widget_proxy", "serve", "--port", "0"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "widgets.support: HISSUNO_PROJECT_ID:" in refused.stderr


def _keys(vendors: TwoVendors) -> list[str]:
    return [vendors.widgets["rewards"]["WIDGET_API_KEY"], vendors.widgets["support"][
        "HISSUNO_SECRET_KEY"]]  # fmt: skip


def test_a_reload_names_what_changed_by_widget(vendors: TwoVendors, tmp_path: Path) -> None:
    path = vendors.write(tmp_path / "widgets.toml")
    old = WidgetsConfig.load(path, env_file=None)
    vendors.widgets["rewards"]["mount"] = "/store"
    vendors.widgets["rewards"]["WIDGET_COLOR"] = "dark"
    vendors.widgets["chat"] = {**vendors.widgets.pop("support"), "mount": "/chat"}
    new = WidgetsConfig.load(vendors.write(path), env_file=None)
    assert changed_widgets(old, new) == [
        "widgets.support (removed)",
        "widgets.rewards: mount",
        "widgets.rewards: WIDGET_COLOR",
        "widgets.chat (added)",
    ]
    assert changed_widgets(new, new) == []


def test_forget_config_reaches_every_widget_of_a_running_server(
    vendors: TwoVendors, tmp_path: Path
) -> None:
    config, base, args, scanner, cookie = _serving(vendors, tmp_path)
    signins = vendors.stand_ins["rewards"].calls
    with (
        running(args, tmp_path, base, scanner),
        httpx2.Client(base_url=base, cookies=cookie) as client,
    ):
        assert client.get("/rewards/widget").status_code == 200
        assert client.get("/support/widget").status_code == 200
        assert signins["signin"] == 1
        done = run_forget(tmp_path, "--config", str(config), "--email", EMAIL, "--url", base)
        assert done.returncode == 0, done.stderr
        assert f"{base}/rewards" in done.stdout
        assert f"{base}/support" in done.stdout
        assert client.get("/rewards/widget").status_code == 200
        assert signins["signin"] == 2  # told through the widget's /admin/forget
