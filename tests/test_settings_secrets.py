"""Settings new in the production round: secrets from files, anonymous visitors, the
session values a vendor's token is made from, Subresource Integrity."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import VALID
from widget_proxy.options import MAX_SECRET_FILE
from widget_proxy.settings import Settings, SettingsError, all_options

NEUROON = {
    "TOKEN_PROVIDER": "neuroon",
    "SESSION_SECRET": VALID["SESSION_SECRET"],
    "NEUROON_SHOP_ID": "shop-1",
    "NEUROON_API_KEY": "sk_" + "a" * 32,
}
HISSUNO = {
    "TOKEN_PROVIDER": "hissuno",
    "SESSION_SECRET": VALID["SESSION_SECRET"],
    "HISSUNO_SECRET_KEY": "sk_live_" + "b" * 32,
    "HISSUNO_PROJECT_ID": "p-1",
    "HISSUNO_SCRIPT_URL": "https://cdn.example/hissuno.js",
}
SDK = {
    "TOKEN_PROVIDER": "returningai-sdk",
    "SESSION_SECRET": VALID["SESSION_SECRET"],
    "RETURNINGAI_ACCESS_ID": "access-1",
    "RETURNINGAI_ACCESS_KEY": "rai-key-" + "c" * 24,
    "RETURNINGAI_COMMUNITY_ID": "community-1",
}


def problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    return caught.value.problems


# --- secrets from files -------------------------------------------------------------


def test_every_secret_setting_has_a_file_form() -> None:
    secret = [o for o in all_options() if o.secret]

    assert {o.name for o in secret} >= {
        "SESSION_SECRET",
        "CACHE_URL",
        "WIDGET_API_KEY",
        "WIDGET_API_KEY_NEXT",
        "RETURNINGAI_ACCESS_KEY",
        "RETURNINGAI_ACCESS_KEY_NEXT",
        "NEUROON_API_KEY",
        "NEUROON_API_KEY_NEXT",
        "HISSUNO_SECRET_KEY",
    }
    assert all(o.file_name == o.name + "_FILE" for o in secret)
    assert {"WIDGET_ID", "TOKEN_PROVIDER"}.isdisjoint(o.name for o in secret)


def test_a_secret_is_read_from_its_file_with_whitespace_trimmed(tmp_path: Path) -> None:
    key, secret = tmp_path / "api_key", tmp_path / "session_secret"
    key.write_text("  key-from-a-file\n")
    secret.write_text("s" * 40 + "\n")
    env = {k: v for k, v in VALID.items() if k not in ("WIDGET_API_KEY", "SESSION_SECRET")}

    settings = Settings.from_env(
        {**env, "WIDGET_API_KEY_FILE": str(key), "SESSION_SECRET_FILE": str(secret)}
    )

    assert settings.vendor.api_key.reveal() == "key-from-a-file"
    assert settings.session_secret.reveal() == "s" * 40
    assert "key-from-a-file" in settings.secrets


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "WIDGET_API_KEY_FILE: cannot read {path}: No such file or directory"),
        (b"   \n", "WIDGET_API_KEY_FILE: {path} is empty"),
        (b"\xff\xfe", "WIDGET_API_KEY_FILE: {path} is not UTF-8 text"),
        (b"x" * (MAX_SECRET_FILE + 1), "WIDGET_API_KEY_FILE: {path} is larger than"),
        (b"has a space", "WIDGET_API_KEY: must be visible ASCII"),  # then parsed as usual
    ],
)
def test_an_unusable_secret_file_is_named(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "api_key"
    if content is not None:
        path.write_bytes(content)
    env = {k: v for k, v in VALID.items() if k != "WIDGET_API_KEY"}

    found = problems({**env, "WIDGET_API_KEY_FILE": str(path)})

    assert len(found) == 1
    assert found[0].startswith(expected.format(path=path))
    if content:
        assert content.decode("latin-1") not in found[0]  # never the file's content


def test_both_forms_of_a_secret_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "api_key"
    path.write_text("from-the-file")

    found = problems({**VALID, "WIDGET_API_KEY_FILE": str(path)})

    assert found == ["WIDGET_API_KEY: set either WIDGET_API_KEY or WIDGET_API_KEY_FILE, not both"]


def test_a_required_secret_may_come_from_its_file_only(tmp_path: Path) -> None:
    env = {k: v for k, v in VALID.items() if k != "WIDGET_API_KEY"}

    found = problems(env)

    assert [p.split(":")[0] for p in found] == ["WIDGET_API_KEY"]


# --- anonymous visitors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "allowed"),
    [
        (NEUROON, True),  # one shop token: nobody to sign in
        ({**NEUROON, "ALLOW_ANONYMOUS": "false"}, False),
        (HISSUNO, False),  # per-user by default, tokenless anonymous when asked
        ({**HISSUNO, "ALLOW_ANONYMOUS": "true"}, True),
        (VALID, False),
        (SDK, False),
    ],
)
def test_allow_anonymous_defaults_by_vendor(env: dict[str, str], allowed: bool) -> None:
    assert Settings.from_env(env).allow_anonymous is allowed


@pytest.mark.parametrize("env", [VALID, SDK], ids=["returningai", "returningai-sdk"])
def test_a_per_user_vendor_refuses_anonymous_visitors(env: dict[str, str]) -> None:
    found = problems({**env, "ALLOW_ANONYMOUS": "true"})

    assert len(found) == 1
    assert found[0].startswith(f"ALLOW_ANONYMOUS: {env.get('TOKEN_PROVIDER', 'returningai')}")


# --- Access Key Embed -----------------------------------------------------------------


def test_sdk_defaults() -> None:
    vendor = Settings.from_env(SDK).vendor

    assert vendor.api_url == "https://api-v2.returning.ai"
    assert vendor.user_identifiers == (("data-email", "email"),)
    assert vendor.element == "rai-store-widget"
    assert vendor.sdk_url.startswith("https://unpkg.com/@returningai/widget-sdk@")


IDS = "RETURNINGAI_USER_IDENTIFIERS"
SDK_REFUSALS = [
    ("email=email", IDS, "RETURNINGAI_USER_IDENTIFIERS: 'email'"),
    ("data-email", IDS, "RETURNINGAI_USER_IDENTIFIERS: 'data-email'"),
    ("data-a=email,data-a=user_id", IDS, "RETURNINGAI_USER_IDENTIFIERS: data-a is named twice"),
    (" , ", IDS, "RETURNINGAI_USER_IDENTIFIERS: must name"),
    ("data-customer-id=customer_id", IDS, "SESSION_METADATA_KEYS: must list customer_id"),
    ("", "RETURNINGAI_COMMUNITY_ID", "RETURNINGAI_COMMUNITY_ID: required for a store widget"),
    ("custom", "RETURNINGAI_WIDGET_TYPE", "RETURNINGAI_WIDGET_ID: required for a custom widget"),
    ("channel", "RETURNINGAI_WIDGET_TYPE", "RETURNINGAI_CHANNEL_ID: required for a channel"),
    ("md5-abc", "RETURNINGAI_SDK_INTEGRITY", "RETURNINGAI_SDK_INTEGRITY: must be sha256-"),
    ("http://api.example.com", "RETURNINGAI_API_URL", "RETURNINGAI_API_URL: http://api.example"),
    ("600px;color:red", "RETURNINGAI_WIDGET_HEIGHT", "RETURNINGAI_WIDGET_HEIGHT: must be a CSS"),
]


@pytest.mark.parametrize(("value", "name", "expected"), SDK_REFUSALS)
def test_sdk_refusals(value: str, name: str, expected: str) -> None:
    found = problems({**SDK, name: value})

    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_identifiers_from_the_session() -> None:
    env = {**SDK, "RETURNINGAI_USER_IDENTIFIERS": "data-email=email, data-customer-id=customer_id"}

    settings = Settings.from_env({**env, "SESSION_METADATA_KEYS": "account.customer_id"})
    header = problems(
        {**env, "SESSION_METADATA_KEYS": "customer_id", "IDENTITY_SOURCE": "header",
         "IDENTITY_PROXIES": "10.0.0.0/8"}
    )  # fmt: skip

    assert settings.vendor.user_identifiers == (
        ("data-email", "email"),
        ("data-customer-id", "customer_id"),
    )
    assert header == [
        "IDENTITY_SOURCE: header gives only the email, but the vendor's token needs"
        " customer_id from the session"
    ]


# --- Neuroon ----------------------------------------------------------------------------


def test_neuroon_documented_defaults() -> None:
    vendor = Settings.from_env(NEUROON).vendor

    assert vendor.token_mode == "remote"
    assert vendor.api_url == "https://api.neuroon.ai"
    assert vendor.script_url == "https://cdn.neuroon.ai/widget.js"
    assert (vendor.theme, vendor.locale, vendor.position) == ("auto", "", "inline")
    assert vendor.script_integrity == ""


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"NEUROON_SCRIPT_INTEGRITY": "sha384-not base64!"}, "NEUROON_SCRIPT_INTEGRITY: must be"),
        ({"NEUROON_LOCALE": "english"}, "NEUROON_LOCALE: must be a two-letter"),
        ({"NEUROON_THEME": "blue"}, "NEUROON_THEME: must be one of auto, light, dark"),
        ({"NEUROON_POSITION": "top"}, "NEUROON_POSITION: must be one of inline, floating"),
        ({"NEUROON_TOKEN_MODE": "local", "NEUROON_API_KEY_NEXT": "sk_" + "d" * 32},
         "NEUROON_API_KEY_NEXT: only used with NEUROON_TOKEN_MODE=remote"),
        ({"NEUROON_API_KEY_NEXT": "sk_short"}, "NEUROON_API_KEY_NEXT: must be sk_"),
    ],
)  # fmt: skip
def test_neuroon_refusals(extra: dict[str, str], expected: str) -> None:
    found = problems({**NEUROON, **extra})

    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_the_readme_names_every_secret_with_a_file_form() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    paragraph = readme[readme.index("**Secrets from files.**") :].split("\n\n", 1)[0]

    named = re.findall(r"`([A-Z_]+)`", paragraph.split("can instead", 1)[0])

    assert named == [o.name for o in all_options() if o.secret]
