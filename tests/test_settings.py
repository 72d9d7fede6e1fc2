"""Settings: every problem reported at once, secrets hidden, docs in step with code."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from dotenv import dotenv_values

from tests.support import VALID, fresh_secret
from tests.support.processes import serve_refused
from tests.support.vendors import HISSUNO_KEY, SHOP_KEY, hissuno_env, neuroon_env
from widget_proxy.options import Secret
from widget_proxy.providers import DEFAULT_PROVIDER as DEFAULT
from widget_proxy.providers.hissuno import HissunoSettings
from widget_proxy.providers.neuroon import NeuroonSettings
from widget_proxy.providers.returningai import Widget
from widget_proxy.settings import Settings, SettingsError, all_options, read_environ

ROOT = Path(__file__).resolve().parent.parent
OPTIONS = all_options()


def test_defaults_and_normalisation() -> None:
    settings = Settings.from_env(VALID)

    assert settings.vendor.base_url == "https://widgets.example.com"
    assert settings.vendor.widget_type == "store"
    assert settings.widget_color == "light"
    assert settings.vendor.widgets == ()
    assert settings.session_cookie == "session"
    assert settings.session_email_key == ("email",)
    assert settings.login_url is None
    assert settings.frame_ancestors == ("'self'",)
    assert settings.vendor.default_widget == Widget("store", "w-1")
    assert settings.upstream_connect_timeout == 2.0
    assert settings.upstream_max_bytes == 2 * 1024 * 1024


@pytest.mark.parametrize(
    "written",
    [
        "HTTPS://Widgets.Example.COM/",
        "Https://widgets.example.com",
        " https://WIDGETS.example.com/ ",
    ],
)
def test_a_url_has_one_spelling(written: str) -> None:
    """Scheme and host are case-insensitive: each URL setting keeps one spelling of them
    (what the checks compare and what the namespace hashes)."""
    settings = Settings.from_env({**VALID, "WIDGET_BASE_URL": written})
    assert settings.vendor.base_url == "https://widgets.example.com"


def test_parsed_values() -> None:
    settings = Settings.from_env(
        {
            **VALID,
            "WIDGET_TYPE": "channel",
            "WIDGET_COLOR": "dark",
            "WIDGETS": " store/a , minigames/b_2 ,",
            "SESSION_EMAIL_KEY": "user.profile.email",
            "LOGIN_URL": "/account/login",
            "FRAME_ANCESTORS": "'self'  https://shop.example.com *.example.org",
            "UPSTREAM_READ_TIMEOUT": "0.25",
        }
    )

    assert settings.vendor.widgets == (Widget("store", "a"), Widget("minigames", "b_2"))
    assert settings.vendor.allowed_widgets == {
        Widget("channel", "w-1"),
        Widget("store", "a"),
        Widget("minigames", "b_2"),
    }
    assert settings.session_email_key == ("user", "profile", "email")
    assert settings.frame_ancestors == ("'self'", "https://shop.example.com", "*.example.org")
    assert settings.upstream_read_timeout == 0.25


def test_every_missing_setting_is_reported_together() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({})

    named = [p.split(":")[0] for p in caught.value.problems]
    wanted = [o for o in OPTIONS if o.default is None and o.vendor in ("", "returningai")]
    assert named == [o.name for o in wanted]
    # A vendor's own required settings say which TOKEN_PROVIDER needs them.
    assert all(
        "with TOKEN_PROVIDER=returningai" in p
        for p in caught.value.problems
        if p.startswith("WIDGET_")
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("WIDGET_BASE_URL", "ftp://x", "http(s) URL"),
        ("WIDGET_BASE_URL", "https://x/?a=1", "query"),
        ("WIDGET_BASE_URL", "https://user:pw@x", "credentials"),
        ("WIDGET_BASE_URL", "https://widgets example.com", "spaces"),
        ("WIDGET_BASE_URL", "https://widgets.example.com\t.evil", "control characters"),
        ("WIDGET_BASE_URL", "\x01https://widgets.example.com", "control characters"),
        ("WIDGET_BASE_URL", "https://:443", "http(s) URL"),
        ("WIDGET_BASE_URL", "https:///path", "http(s) URL"),
        ("WIDGET_BASE_URL", "https:widgets.example.com", "http(s) URL"),
        ("WIDGET_BASE_URL", "https://widgets.example.com:99999", "bad port"),
        ("WIDGET_BASE_URL", "https://widgets.example.com:https", "bad port"),
        ("LOGIN_URL", "https://shop.example/log in", "path"),
        ("WIDGET_API_KEY", "   ", "required"),
        ("WIDGET_COMMUNITY_ID", "a/b", "path segment"),
        ("WIDGET_ID", "..", "path segment"),
        ("WIDGET_TYPE", "shop", "'shop' is not one of store, channel"),
        ("WIDGET_COLOR", "green", "'green' is not one of light, dark"),
        ("WIDGETS", "store", "type/id"),
        ("WIDGETS", "shop/1", "not a widget type"),
        ("WIDGETS", "store/a b", "not a valid widget id"),
        ("SESSION_SECRET", "short", "at least 32"),
        ("SESSION_COOKIE", "my cookie", "cookie name"),
        ("SESSION_EMAIL_KEY", "user..email", "dotted path"),
        ("SESSION_MAX_AGE", "soon", "number"),
        ("LOGIN_URL", "//evil.example", "path"),
        ("LOGIN_URL", "javascript:alert(1)", "path"),
        ("FRAME_ANCESTORS", "self", "single quotes"),
        ("FRAME_ANCESTORS", "'self'; script-src *", "not a CSP source"),
        ("FRAME_ANCESTORS", "'none' https://a.example", "alone"),
        ("UPSTREAM_CONNECT_TIMEOUT", "0", "greater than 0"),
        ("UPSTREAM_MAX_BYTES", "-1", "greater than 0"),
        ("CACHE_URL", "memcached://x", "memory://"),
        ("CACHE_URL", "redis://", "needs a host"),
        ("TOKEN_REFRESH_MARGIN", "-1", "at least 0"),
        ("PAGE_CACHE_TTL", "0", "greater than 0"),
    ],
)
def test_bad_values_name_their_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**VALID, name: value, "WIDGET_COLOR": "green"})

    problems = caught.value.problems
    assert any(p.startswith("WIDGET_COLOR:") for p in problems)  # reported together
    mine = [p for p in problems if p.startswith(f"{name}:")]
    assert len(mine) == 1
    assert message in mine[0]


def test_secrets_never_show() -> None:
    settings = Settings.from_env(VALID)

    for text in (repr(settings), str(settings), repr(settings.vendor.api_key), f"{settings}"):
        assert VALID["WIDGET_API_KEY"] not in text
        assert VALID["SESSION_SECRET"] not in text
    assert settings.vendor.api_key.reveal() == VALID["WIDGET_API_KEY"]
    assert set(settings.secrets) == {VALID["WIDGET_API_KEY"], VALID["SESSION_SECRET"]}
    password = fresh_secret()
    with_password = Settings.from_env({**VALID, "CACHE_URL": f"redis://:{password}@redis:6379/0"})
    assert password not in repr(with_password)
    assert password in with_password.secrets
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")


def test_settings_are_frozen() -> None:
    settings = Settings.from_env(VALID)

    with pytest.raises(AttributeError):
        settings.session_cookie = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        settings.vendor.widget_id = "other"  # type: ignore[attr-defined]


def test_environment_wins_over_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("WIDGET_ID=from-file\nWIDGET_TYPE=channel\n")
    monkeypatch.setenv("WIDGET_ID", "from-env")

    merged = read_environ(env_file)

    assert merged["WIDGET_ID"] == "from-env"
    assert merged["WIDGET_TYPE"] == "channel"


def test_env_example_lists_every_setting_with_its_default() -> None:
    text = (ROOT / ".env.example").read_text()
    # Uncomment every assignment and let python-dotenv read it, quotes and all.
    uncommented = re.sub(r"(?m)^# ([A-Z_]+=)", r"\1", text)
    values = dotenv_values(stream=io.StringIO(uncommented))

    assert list(values) == [o.name for o in OPTIONS]
    for option in OPTIONS:
        if option.default is not None:
            assert values[option.name] == option.default, option.name
    example = {k: v or "" for k, v in values.items()}
    # Its secrets ship empty (a value written there would be published); filled in, it is valid.
    secret = [
        o.name for o in OPTIONS if o.secret and o.default is None and o.vendor in ("", DEFAULT)
    ]
    assert secret == ["SESSION_SECRET", "WIDGET_API_KEY"]  # the default vendor's, and ours
    assert not any(example[name] for name in secret)
    assert "make one: python -c 'import secrets; print(secrets.token_urlsafe(48))'" in text
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(example)
    assert [p.split(":")[0] for p in caught.value.problems] == secret
    Settings.from_env({**example, **{name: fresh_secret() for name in secret}})


def test_the_settings_page_matches_the_settings() -> None:
    text = (ROOT / "docs" / "settings.md").read_text()
    rows = re.findall(r"(?m)^\| `([A-Z_]+)` \| (.*?) \| (.*?) \|$", text)
    documented = {name: (meaning, default) for name, meaning, default in rows}

    assert list(documented) == [o.name for o in OPTIONS]
    for option in OPTIONS:
        meaning, default = documented[option.name]
        assert meaning == option.help
        if option.default is None:
            expected = f"required for `{option.vendor}`" if option.vendor else "required"
        else:
            expected = option.shown or (f"`{option.default}`" if option.default else "empty")
        assert default == expected, option.name


def test_serve_refuses_to_start_with_bad_settings(tmp_path: Path) -> None:
    result = serve_refused(tmp_path, {"WIDGET_COLOR": "blue", "SESSION_SECRET": "tiny"})

    assert result.returncode == 2
    for name in ("WIDGET_BASE_URL", "WIDGET_API_KEY", "WIDGET_COLOR", "SESSION_SECRET"):
        assert f"{name}:" in result.stderr
    assert "tiny" not in result.stderr


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        (neuroon_env(NEUROON_API_KEY="sk_0123"), "NEUROON_API_KEY: must be sk_ followed by 32"),
        (neuroon_env(NEUROON_API_KEY="sk_" + "0123456789ABCDEF" * 2), "NEUROON_API_KEY"),
        (neuroon_env(NEUROON_API_KEY=""), "NEUROON_API_KEY: required with TOKEN_PROVIDER=neuroon"),
        (neuroon_env(NEUROON_API_URL="http://api.example.com"), "NEUROON_API_URL: http://api"),
        (neuroon_env(NEUROON_ROTATE_AFTER="90000"), "NEUROON_ROTATE_AFTER: 90000 s is not less"),
        (neuroon_env(NEUROON_ROTATE_AFTER="86400"), "expired tokens would be served"),
        (neuroon_env(NEUROON_SCRIPT_URL="http://cdn.neuroon.example/w.js"), "plain http"),
        (
            neuroon_env(NEUROON_TOKEN_MODE="remote", NEUROON_API_URL="http://api.neuroon.example"),
            "NEUROON_API_URL: http://api.neuroon.example is plain http",
        ),
        (hissuno_env(HISSUNO_SECRET_KEY="sk_test_" + "a" * 32), "HISSUNO_SECRET_KEY: must be"),
        (hissuno_env(HISSUNO_SECRET_KEY="sk_live_" + "a" * 31), "HISSUNO_SECRET_KEY: must be"),
        (hissuno_env(HISSUNO_SCRIPT_URL=""), "HISSUNO_SCRIPT_URL: required"),
        (
            {**VALID, "TOKEN_PROVIDER": "acme"},
            "TOKEN_PROVIDER: 'acme' is not one of returningai, returningai-sdk, neuroon, hissuno",
        ),
    ],
)
def test_provider_settings_are_checked(env: dict[str, str], problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        Settings.from_env(env)


def test_a_bad_choice_echoes_the_value_given() -> None:
    """Every setting with a list of choices (or true/false) says what it was given; a
    secret's parser never quotes its value."""
    given = "Bogus-Choice"
    said = {}
    for option in OPTIONS:
        try:
            option.parse(given)
        except ValueError as exc:
            said[option.name] = str(exc)
    choices = {name: text for name, text in said.items() if re.search(r"one of|true or", text)}

    assert set(choices) >= {
        "TOKEN_PROVIDER", "WIDGET_COLOR", "IDENTITY_SOURCE", "LOG_FORMAT", "LOG_LEVEL",
        "METRICS_ENABLED", "WIDGET_TYPE", "RETURNINGAI_WIDGET_TYPE", "NEUROON_TOKEN_MODE",
        "NEUROON_THEME", "NEUROON_POSITION",
    }  # fmt: skip
    for name, text in choices.items():
        assert text.startswith(f"{given!r} is not "), name
    assert not any(given in said.get(o.name, "") for o in OPTIONS if o.secret)
    with pytest.raises(SettingsError) as caught:  # a long value, cut short
        Settings.from_env({**VALID, "LOG_LEVEL": "verbose" * 10})
    cut = ("verbose" * 10)[:40] + "…"
    assert caught.value.problems == [
        f"LOG_LEVEL: {cut!r} is not one of debug, info, warning, error"
    ]


def test_other_providers_need_no_returningai_settings() -> None:
    # Only the chosen vendor's group is parsed: Returning.AI's variables, even
    # invalid ones, are neither required nor read, and none of its values is kept.
    stray = {"WIDGET_BASE_URL": "ftp://not-read", "WIDGET_API_KEY": "stray-returningai-key"}
    neuroon = Settings.from_env({**neuroon_env(), **stray})
    hissuno = Settings.from_env({**hissuno_env(), **stray})

    assert isinstance(neuroon.vendor, NeuroonSettings)
    assert isinstance(hissuno.vendor, HissunoSettings)
    for settings in (neuroon, hissuno):
        assert not hasattr(settings.vendor, "base_url")
        assert "stray-returningai-key" not in settings.secrets


def test_provider_keys_are_secrets() -> None:
    for env, key in ((neuroon_env(), SHOP_KEY), (hissuno_env(), HISSUNO_KEY)):
        settings = Settings.from_env(env)
        assert key not in repr(settings)
        assert key in settings.secrets
