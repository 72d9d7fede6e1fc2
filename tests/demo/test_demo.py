"""The demo's settings: the user's (the environment over .env) on top of the demo's
defaults, under what the demo can't do without (its stand-in, its login)."""

from __future__ import annotations

from pathlib import Path

from tests.support import fresh_secret
from tests.support.vendors import HISSUNO_KEY
from widget_proxy.demo import LOGIN, demo_env
from widget_proxy.providers.hissuno import PROVIDER, HissunoSettings
from widget_proxy.settings import Settings

URL = "http://127.0.0.1:9"


def test_the_users_settings_reach_the_demo() -> None:
    vendor = PROVIDER.stand_in()
    user = {"HISSUNO_TOKEN_TTL": "90", "TOKEN_REFRESH_MARGIN": "30", "LOG_LEVEL": "WARNING"}

    env, replaced = demo_env("hissuno", vendor, URL, user)
    settings = Settings.from_env(env)

    assert isinstance(settings.vendor, HissunoSettings)
    assert settings.vendor.token_ttl == 90
    assert settings.token_refresh_margin == 30
    assert settings.log_level == "WARNING"
    assert replaced == []
    assert len(settings.session_secret.reveal()) >= 32  # made up: the user set none


def test_the_stand_in_and_the_login_win_over_the_users_settings(tmp_path: Path) -> None:
    vendor = PROVIDER.stand_in()
    secret_file = tmp_path / "key"
    secret_file.write_text(HISSUNO_KEY)
    user = {
        "TOKEN_PROVIDER": "returningai",
        "HISSUNO_SECRET_KEY": HISSUNO_KEY,  # a real key must never meet the demo's login
        "HISSUNO_SECRET_KEY_FILE": str(secret_file),
        "HISSUNO_API_URL": "https://hissuno.example/api/integrations/widget/chat",
        "HISSUNO_PROJECT_ID": "the-real-project",
        "SESSION_EMAIL_KEY": "user.email",  # the demo's login writes `email`
        "SESSION_SECRET_FILE": str(tmp_path / "session"),
    }
    users_secret = fresh_secret("users-")
    (tmp_path / "session").write_text(users_secret)

    env, replaced = demo_env("hissuno", vendor, URL, user)
    settings = Settings.from_env(env)

    assert env["HISSUNO_SECRET_KEY"] == vendor.secret_key
    assert "HISSUNO_SECRET_KEY_FILE" not in env
    assert isinstance(settings.vendor, HissunoSettings)
    assert settings.vendor.api_url == f"{URL}/api/integrations/widget/chat"
    assert settings.vendor.project_id == vendor.project_id
    assert settings.token_provider == "hissuno"
    assert settings.session_email_key == ("email",)
    assert {k: env[k] for k in LOGIN} == LOGIN
    # The user's own session secret is kept, from its file (no second one made up).
    assert settings.session_secret.reveal() == users_secret
    assert replaced == [
        "HISSUNO_API_URL",
        "HISSUNO_PROJECT_ID",
        "HISSUNO_SECRET_KEY",
        "HISSUNO_SECRET_KEY_FILE",
        "SESSION_EMAIL_KEY",
        "TOKEN_PROVIDER",
    ]
