"""`widget-proxy check --config FILE`: every widget's steps, grouped by widget, against
the two stand-ins; a file with mistakes tries nothing (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import LeakScanner
from tests.support.configs import TwoVendors, two_vendors
from tests.support.processes import clean_environ


@pytest.fixture
def vendors() -> Iterator[TwoVendors]:
    with two_vendors() as found:
        yield found


def check(tmp_path: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "widget_proxy", "check", "--config", str(config),
         "--email", "ann@example.com"],
        cwd=tmp_path, env=clean_environ(PYTHONIOENCODING="utf-8"), capture_output=True,
        text=True, encoding="utf-8", timeout=60,
    )  # fmt: skip


def test_every_widget_is_checked_in_turn(vendors: TwoVendors, tmp_path: Path) -> None:
    done = check(tmp_path, vendors.write(tmp_path / "widgets.toml"))
    assert done.returncode == 0, done.stdout + done.stderr
    rewards, support = done.stdout.split("widgets.support (mounted at /support):")
    assert "widgets.rewards (mounted at /rewards):" in rewards
    assert "TOKEN_PROVIDER=returningai" in rewards
    assert "signin" in rewards
    assert "TOKEN_PROVIDER=hissuno" in support
    assert done.stdout.rstrip().endswith("All checks passed.")
    scanner = LeakScanner()
    scanner.add(vendors.secret, vendors.widgets["support"]["HISSUNO_SECRET_KEY"])
    scanner.check("check's output", done.stdout + done.stderr)


def test_a_failing_widget_stops_the_check(vendors: TwoVendors, tmp_path: Path) -> None:
    vendors.widgets["rewards"]["WIDGET_COMMUNITY_ID"] = "someone-else"
    done = check(tmp_path, vendors.write(tmp_path / "widgets.toml"))
    assert done.returncode == 1, done.stdout
    assert "widgets.support" not in done.stdout  # the first failure stops it, as alone


def test_a_file_with_mistakes_tries_nothing(vendors: TwoVendors, tmp_path: Path) -> None:
    vendors.widgets["support"]["HISSUNO_PROJECT_ID"] = "../x"
    done = check(tmp_path, vendors.write(tmp_path / "widgets.toml"))
    assert done.returncode == 2
    assert "widgets.support: HISSUNO_PROJECT_ID:" in done.stdout
    assert "nothing was tried" in done.stdout
