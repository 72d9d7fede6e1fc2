"""`widget-proxy standin`: each vendor's stand-in alone, as a real process, and the .env it
prints: `check` passes on those settings alone, and fails once the key is changed."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from dotenv import dotenv_values

from tests.support import LeakScanner
from tests.support.processes import printing, run_check
from widget_proxy.demo.standin import dotenv, standin_env, url_of
from widget_proxy.providers import PROVIDERS
from widget_proxy.servers import bind
from widget_proxy.settings import Settings

EMAIL = "a@example.com"


def other_key(key: str) -> str:
    """`key` with its last character changed, in the same format (hex stays hex)."""
    last = key[-1]
    digits = "10" if last == "0" else "01"
    letters = "ba" if last == "a" else "ab"
    return key[:-1] + (digits if last.isdigit() else letters)[0]


@pytest.mark.slow
@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_check_passes_on_the_printed_settings_and_fails_with_another_key(
    provider: str, tmp_path: Path, leak_scanner: LeakScanner
) -> None:
    args = ["standin", "--provider", provider]
    with printing(args, tmp_path, leak_scanner) as settings:
        passed = run_check(tmp_path, settings, EMAIL, dotenv=False)
        key_name = Settings.from_env(settings).vendor.key[0]
        wrong = {**settings, key_name: other_key(settings[key_name])}
        failed = run_check(tmp_path, wrong, EMAIL, dotenv=False)

    for result in (passed, failed):
        leak_scanner.check("the check's output", result.stdout + result.stderr)
    assert settings["TOKEN_PROVIDER"] == provider
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "⚠" not in passed.stdout  # every step proved what it checks
    assert passed.stdout.splitlines()[-1] == "All checks passed."
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert re.search(rf"^✘ .*\b{key_name}\b", failed.stdout, re.MULTILINE), failed.stdout
    assert failed.stdout.splitlines()[-1].startswith("Check failed: ")


def test_its_settings_are_new_on_every_run() -> None:
    vendor = PROVIDERS["hissuno"].stand_in()
    first, second = (
        standin_env(vendor, "http://127.0.0.1:9"),
        standin_env(vendor, "http://127.0.0.1:9"),
    )

    assert first["SESSION_SECRET"] != second["SESSION_SECRET"]
    assert len(first["SESSION_SECRET"]) >= 48
    assert PROVIDERS["hissuno"].stand_in().secret_key != vendor.secret_key  # type: ignore[attr-defined]
    assert "UPSTREAM_ALLOW_HTTP" not in first  # plain http on loopback needs no consent
    beyond = standin_env(vendor, "http://192.0.2.7:9")
    assert beyond["UPSTREAM_ALLOW_HTTP"] == "true"
    Settings.from_env(beyond)  # valid as printed


def test_its_dotenv_reads_back_as_written() -> None:
    env = {"A": "plain-value_0.9:/x,y@z", "B": "with space #and 'hash'", "C": ""}

    text = dotenv(env, "a comment")

    assert text.startswith("# a comment\n")
    assert text.endswith("\n\n")  # the empty line ends the settings for a pipe's reader
    assert dotenv_values(stream=io.StringIO(text)) == env


def test_a_wildcard_address_is_reached_on_loopback() -> None:
    # Bound, never listening: nothing can connect to it.
    with bind("0.0.0.0") as anywhere, bind("127.0.0.1") as loopback:  # noqa: S104
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url_of(anywhere))
        assert url_of(loopback) == f"http://127.0.0.1:{loopback.getsockname()[1]}"
