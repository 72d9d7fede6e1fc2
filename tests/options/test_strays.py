"""Variables that look like settings but are none (`options.strays`): one warning line
each, with a did-you-mean, said once by `serve` and by `check`; never an error, and
nothing said of what the platform sets."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.support import VALID, LeakScanner
from tests.support.processes import run_check, serve, serve_refused
from widget_proxy.options.strays import warnings
from widget_proxy.providers.returningai import ReturningAIStandIn
from widget_proxy.settings import Settings, SettingsError, all_options

OPTIONS = all_options()


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("TOKEN_REFRESH_MARGN", "did you mean TOKEN_REFRESH_MARGIN?"),
        ("SESION_SECRET", "did you mean SESSION_SECRET?"),
        ("CACH_URL", "did you mean CACHE_URL?"),
        ("LOG_LEVL", "did you mean LOG_LEVEL?"),
        ("RATE_LIMIT", "did you mean RATE_LIMIT_PER_MINUTE?"),
        ("UPSTREAM_TIMEOUT", "did you mean UPSTREAM_READ_TIMEOUT?"),
        ("NEURON_API_KEY", "did you mean NEUROON_API_KEY?"),
        ("NEURON_SHOP", "did you mean NEUROON_SHOP_ID?"),
        ("RETURNING_AI_ACCESS_KEY", "did you mean RETURNINGAI_ACCESS_KEY?"),
        ("HISSUNO_PROJECT", "did you mean HISSUNO_PROJECT_ID?"),
        ("HISSUNO_WIDGET_TITLE", "did you mean HISSUNO_"),
        ("WIDGET_ID_FILE", "only a secret setting has a _FILE form; did you mean WIDGET_ID?"),
        ("SESSION_HTTPS_ONLY", "is not read by the proxy: set https_only/same_site on your"),
        ("SESSION_SAME_SITE", "is not read by the proxy: set https_only/same_site on your"),
    ],
)
def test_a_name_close_to_a_setting_gets_one_line_with_a_guess(name: str, said: str) -> None:
    found = warnings({name: "1"}, OPTIONS)

    assert len(found) == 1
    assert found[0].startswith(f"{name} ")
    assert said in found[0]


def test_the_platforms_variables_and_the_settings_themselves_are_left_alone() -> None:
    env = {
        **{name: "x" for name in ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG")},
        **{name: "x" for name in ("LC_ALL", "TZ", "PWD", "HOSTNAME", "PAGER", "EDITOR", "CI")},
        "PYTHONPATH": "x",
        "VIRTUAL_ENV": "x",
        "PROMETHEUS_MULTIPROC_DIR": "x",
        "XDG_SESSION_TYPE": "x",
        "DBUS_SESSION_BUS_ADDRESS": "x",
        "SESSION_MANAGER": "local/host:@/tmp/.ICE-unix/1",
        # Kubernetes, for a Service named widget-proxy and one named token-cache
        "WIDGET_PROXY_SERVICE_HOST": "10.0.0.7",
        "WIDGET_PROXY_SERVICE_PORT": "8000",
        "WIDGET_PROXY_SERVICE_PORT_HTTP": "8000",
        "WIDGET_PROXY_PORT": "tcp://10.0.0.7:8000",
        "WIDGET_PROXY_PORT_8000_TCP": "tcp://10.0.0.7:8000",
        "WIDGET_PROXY_PORT_8000_TCP_ADDR": "10.0.0.7",
        "TOKEN_CACHE_PORT_6379_TCP_PROTO": "tcp",
        "WIDGET_PROXY_CONFIG": "widgets.toml",  # serve --config's file, not a setting
        **{o.name: "" for o in OPTIONS},
        **{o.file_name: "" for o in OPTIONS if o.secret},
    }

    assert warnings(env, OPTIONS) == []


def test_a_stray_is_said_before_the_problems_it_may_explain(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("SESION_SECRET=x\n")
    env_file = tmp_path / ".env"
    said: list[str] = []

    with pytest.raises(SettingsError):  # SESSION_SECRET is missing: the typo says why
        Settings.load(env_file, warn=said.append)
    with (
        caplog.at_level(logging.WARNING, logger="widget_proxy.settings"),
        pytest.raises(SettingsError),
    ):
        Settings.load(env_file)  # mounted in an app: its log says it

    assert said == ["SESION_SECRET is not a setting (ignored); did you mean SESSION_SECRET?"]
    assert [r.getMessage() for r in caplog.records] == said


def test_serve_refused_warns_then_says_why(tmp_path: Path) -> None:
    env = {k: v for k, v in VALID.items() if k != "SESSION_SECRET"}
    result = serve_refused(tmp_path, {**env, "SESION_SECRET": VALID["SESSION_SECRET"]})

    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0] == (
        "widget-proxy: warning: SESION_SECRET is not a setting (ignored);"
        " did you mean SESSION_SECRET?"
    )
    assert "SESSION_SECRET: required" in result.stderr


def test_serve_and_check_warn_once_and_run(
    tmp_path: Path, vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner
) -> None:
    """The issue's typo: said once (not again by the app `serve` runs), and the
    retired cookie setting with it; the proxy serves all the same."""
    strays = {"TOKEN_REFRESH_MARGN": "30", "SESSION_HTTPS_ONLY": "false"}
    with serve(tmp_path, vendor, upstream, leak_scanner, **strays) as served:
        env = (tmp_path / ".env").read_text()
    logged = served.log.read_text()
    checked = run_check(tmp_path, dict(line.split("=", 1) for line in env.splitlines()), None)

    for said in (logged, checked.stderr):
        typo = [line for line in said.splitlines() if "TOKEN_REFRESH_MARGN" in line]
        assert len(typo) == 1, said
        assert typo[0].endswith("did you mean TOKEN_REFRESH_MARGIN?")
        retired = [line for line in said.splitlines() if "SESSION_HTTPS_ONLY" in line]
        assert len(retired) == 1, said
        assert "set https_only/same_site on your app's SessionMiddleware" in retired[0]
