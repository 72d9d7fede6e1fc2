"""A widget's settings from typed Python values (`widget_settings`), validated exactly
as the environment is."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import fresh_secret
from tests.support.vendors import HISSUNO, HISSUNO_KEY
from widget_proxy import SettingsError, widget_settings
from widget_proxy.secret import Secret

SECRET = fresh_secret()


def test_typed_keywords_over_the_environment(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(HISSUNO_KEY)
    env = {"SESSION_SECRET": SECRET, "TOKEN_PROVIDER": "returningai", "RATE_LIMIT_PER_MINUTE": "5"}
    settings = widget_settings(
        {"hissuno_project_id": "p-9", "rate_limit_per_minute": 7},
        env=env,
        token_provider="hissuno",
        hissuno_secret_key_file=tmp_path / "key",
        hissuno_script_url="https://cdn.example/h.js",
        allowed_origins=("https://shop.example.com", "https://www.shop.example.com"),
        widget_sandbox=True,
        upstream_deadline=2.5,
    )
    assert settings.token_provider == "hissuno"
    assert settings.vendor.project_id == "p-9"
    assert settings.vendor.secret_key.reveal() == HISSUNO_KEY
    assert settings.rate_limit_per_minute == 7
    assert len(settings.allowed_origins) == 2
    assert settings.widget_sandbox is True
    assert settings.upstream_deadline == 2.5


def test_a_secret_value_is_taken_as_a_secret() -> None:
    env = {k: v for k, v in HISSUNO.items() if k != "HISSUNO_SECRET_KEY"}
    settings = widget_settings(env=env, hissuno_secret_key=Secret(HISSUNO_KEY))
    assert settings.vendor.secret_key.reveal() == HISSUNO_KEY


def test_every_problem_at_once_named_by_keyword() -> None:
    with pytest.raises(SettingsError) as caught:
        widget_settings(env={}, token_provider="hissuno", rate_limit_per_minut=5, widget_color={})
    assert caught.value.problems == [
        "rate_limit_per_minut: is not a setting; did you mean rate_limit_per_minute?",
        "widget_color: is a table; a setting's value is a string, number, boolean or list",
    ]
    with pytest.raises(SettingsError) as caught:
        widget_settings(env={"SESSION_SECRET": SECRET}, token_provider="hissuno")
    assert any(p.startswith("HISSUNO_SECRET_KEY: required") for p in caught.value.problems)
