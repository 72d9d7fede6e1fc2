"""A config file's widgets, validated as a whole (`config.widgets`): each widget's
settings are the file's top level, under the environment, under its own table, read by
`Settings.from_env`; every problem of every table is reported at once, named by table
and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import fresh_secret
from tests.support.vendors import HISSUNO, HISSUNO_KEY, SDK
from widget_proxy.config import WidgetsConfig
from widget_proxy.config.tables import Tables
from widget_proxy.errors import SettingsError

SECRET = fresh_secret()


def support(**extra: str) -> dict[str, str]:
    table = {k: v for k, v in HISSUNO.items() if k != "SESSION_SECRET"}
    return {"mount": "/support", **table, **extra}


def sdk(**extra: str) -> dict[str, str]:
    table = {k: v for k, v in SDK.items() if k != "SESSION_SECRET"}
    return {"mount": "/rewards", **table, **extra}


def load(
    shared: dict[str, str],
    widgets: dict[str, dict[str, str]],
    environ: dict[str, str] | None = None,
) -> WidgetsConfig:
    tables = Tables(shared=shared, widgets=widgets)
    return WidgetsConfig.from_tables(tables, environ or {}, source=Path("w.toml"))


def problems(*args: dict[str, str] | dict[str, dict[str, str]]) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load(*args)  # type: ignore[arg-type]
    return caught.value.problems


def test_layers_top_level_then_environment_then_the_widget() -> None:
    shared = {"SESSION_SECRET": SECRET, "RATE_LIMIT_PER_MINUTE": "10", "WIDGET_COLOR": "dark"}
    environ = {"RATE_LIMIT_PER_MINUTE": "20", "WIDGET_COLOR": "light", "HOME": "/root"}
    config = load(shared, {"support": support(WIDGET_COLOR="dark"), "rewards": sdk()}, environ)
    chat, store = (w.settings for w in config.widgets)
    assert (chat.rate_limit_per_minute, store.rate_limit_per_minute) == (20, 20)
    assert (chat.widget_color, store.widget_color) == ("dark", "light")
    assert [(w.name, w.mount, w.settings.token_provider) for w in config.widgets] == [
        ("support", "/support", "hissuno"),
        ("rewards", "/rewards", "returningai-sdk"),
    ]


def test_file_forms_work_and_replace_the_value_below(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(HISSUNO_KEY + "\n")
    (tmp_path / "secret").write_text(SECRET)
    table = support(HISSUNO_SECRET_KEY_FILE=str(tmp_path / "key"))
    del table["HISSUNO_SECRET_KEY"]
    # The top level's SESSION_SECRET is replaced by the environment's _FILE form.
    shared = {"SESSION_SECRET": fresh_secret(), "HISSUNO_SECRET_KEY": fresh_secret()}
    environ = {"SESSION_SECRET_FILE": str(tmp_path / "secret")}
    (widget,) = load(shared, {"support": table}, environ).widgets
    assert widget.settings.vendor.secret_key.reveal() == HISSUNO_KEY
    assert widget.settings.session_secret.reveal() == SECRET


def test_every_problem_of_every_table_at_once() -> None:
    found = problems(
        {"SESSION_SECRET": "short", "RATE_LIMT_PER_MINUTE": "1"},
        {
            "support": support(HISSUNO_SECRET_KEY="nope", LOG_LEVEL="DEBUG", mout="/x"),
            "rewards": sdk(HISSUNO_PROJECT_ID="p", mount="/support/rewards"),
            "other": {"mount": "other/", "TOKEN_PROVIDER": "hisuno"},
        },
    )
    expected = [
        "RATE_LIMT_PER_MINUTE: is not a setting; did you mean RATE_LIMIT_PER_MINUTE?",
        "widgets.support: mout: is not a setting; did you mean mount?",
        "widgets.support: LOG_LEVEL: is the process's, not one widget's",
        "SESSION_SECRET: must be at least 32 characters",
        "widgets.support: HISSUNO_SECRET_KEY: must be sk_live_",
        "widgets.rewards: HISSUNO_PROJECT_ID: is a setting of TOKEN_PROVIDER=hissuno",
        "widgets.other: mount: 'other/' is not a mount path",
        "widgets.other: TOKEN_PROVIDER: 'hisuno' is not one of",
        "widgets.rewards: mount: /support/rewards is inside /support (widgets.support)",
    ]
    for problem in expected:
        assert any(p.startswith(problem) for p in found), (problem, found)
    # A top-level key breaks every widget, but is said once, named alone.
    assert sum(p.startswith("SESSION_SECRET:") for p in found) == 1
    assert not any("nope" in p for p in found)  # a secret's value is never quoted


def test_a_required_key_missing_is_the_widgets() -> None:
    table = support()
    del table["HISSUNO_PROJECT_ID"]
    found = problems({"SESSION_SECRET": SECRET}, {"support": table})
    assert found[0].startswith("widgets.support: HISSUNO_PROJECT_ID: required")


def test_a_mount_is_required() -> None:
    table = support()
    del table["mount"]
    assert problems({"SESSION_SECRET": SECRET}, {"support": table}) == [
        'widgets.support: mount: must be a path such as "/rewards"'
    ]


def test_secrets_of_every_widget_are_redacted() -> None:
    config = load({"SESSION_SECRET": SECRET}, {"support": support(), "rewards": sdk()})
    assert {SECRET, HISSUNO["HISSUNO_SECRET_KEY"], SDK["RETURNINGAI_ACCESS_KEY"]} <= set(
        config.secrets
    )
    assert config.shutdown_timeout == config.process.shutdown_timeout
