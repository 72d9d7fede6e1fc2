"""Hissuno's settings group."""

from __future__ import annotations

import pytest

from tests.support.vendors import hissuno_env
from widget_proxy.providers.hissuno import HissunoSettings
from widget_proxy.settings import Settings, SettingsError


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", None),  # the widget's default
        ("https://hissuno.example/api/integrations/widget/chat/", None),
        ("hissuno.example/chat", "HISSUNO_API_URL: must be an http(s) URL"),
        ("http://hissuno.example/api/integrations/widget/chat", "HISSUNO_API_URL: http://"),
    ],
)
def test_hissuno_api_url_setting(value: str, problem: str | None) -> None:
    env = hissuno_env(HISSUNO_API_URL=value)
    if problem is None:
        group = Settings.from_env(env).vendor
        assert isinstance(group, HissunoSettings)
        assert group.api_url == value.rstrip("/")
        return
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems
