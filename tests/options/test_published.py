"""Secrets anyone may know (`options.published`): what this project published and what
looks like a placeholder is refused, a random key never is, and every secret value the
docs or the `.env.example` show is one the proxy refuses."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest

from tests.support import VALID, fresh_secret
from tests.support.vendors import HISSUNO, NEUROON, SDK, problems
from widget_proxy.options.published import MAKE_ONE, PUBLISHED, refusal
from widget_proxy.settings import Settings, all_options

ROOT = Path(__file__).resolve().parents[2]
SECRET_NAMES = [o.name for o in all_options() if o.secret and o.name != "CACHE_URL"]


@pytest.mark.parametrize(
    "value",
    [
        *sorted(PUBLISHED),
        "replace-with-your-own-secret-of-32-characters",
        "REPLACE_ME_with_a_long_random_string_please",
        "changeme",
        "change-me-before-going-live-0000",
        "CHANGE_THIS_TO_SOMETHING_SECRET!!",
        "an-example-session-secret-for-the-docs",
        "your-api-key-here",
        "YOUR_SESSION_SECRET_HERE_32_CHARS_LONG",
        "your_secret",
        "placeholder-for-the-real-key-value",
        "sk_live_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "xxxx-xxxx-xxxx",
        "todo: fill in the key from the dashboard",
        "FIXME",
        "…",
        "paste the key here...",
        "<your-api-key>",
        "${SESSION_SECRET}",
        "{{ session_secret }}",
        "password",
        "secret",
        "k",
        "s" * 32,
        "sk_" + "e" * 32,
        "sk_live_" + "Ab3_-" * 6 + "xy",
        "abcabcabcabcabcabcabcabcabcabcabcabc",
        "0123456789abcdef0123456789abcdef",
        "sk_" + "0123456789ABCDEF" * 2,
        "my-session-secret-9876543210-zyx",
        "check-session-secret-" + "s" * 32,
    ],
)
def test_published_values_and_placeholders_are_refused(value: str) -> None:
    reason = refusal(value)

    assert reason is not None
    assert len(value) < 8 or value not in reason  # the reason never quotes the value


def test_random_keys_of_every_shape_are_accepted() -> None:
    """What `secrets` makes, in every vendor's shape: the rules are narrow enough that
    a false refusal is rarer than once in ten million (this samples 20,000)."""
    for _ in range(4000):
        for key in (
            secrets.token_urlsafe(48),
            secrets.token_urlsafe(32),
            secrets.token_hex(16),
            "sk_" + secrets.token_hex(16),
            "sk_live_" + secrets.token_urlsafe(24)[:32],
        ):
            assert refusal(key) is None, key


@pytest.mark.parametrize(
    "value", ["replace-with-at-least-32-random-characters-0123456789", "s" * 40]
)
def test_a_published_session_secret_is_refused_with_the_way_to_make_one(value: str) -> None:
    found = problems({**VALID, "SESSION_SECRET": value})

    assert len(found) == 1
    assert found[0].startswith("SESSION_SECRET: ")
    assert found[0].endswith(f"make one: {MAKE_ONE}")
    assert value not in found[0]


# A value anyone may know, for each vendor's secret settings, in the vendor's format.
VENDOR_KEYS = [
    ({**VALID, "WIDGET_API_KEY": "replace-with-the-vendor-api-key"}, "WIDGET_API_KEY"),
    ({**VALID, "WIDGET_API_KEY_NEXT": "your-next-key-here"}, "WIDGET_API_KEY_NEXT"),
    ({**SDK, "RETURNINGAI_ACCESS_KEY": "rai_ak_" + "x" * 32}, "RETURNINGAI_ACCESS_KEY"),
    ({**SDK, "RETURNINGAI_ACCESS_KEY_NEXT": "changeme"}, "RETURNINGAI_ACCESS_KEY_NEXT"),
    ({**NEUROON, "NEUROON_API_KEY": "sk_" + "0" * 32}, "NEUROON_API_KEY"),
    (
        {**NEUROON, "NEUROON_TOKEN_MODE": "remote", "NEUROON_API_KEY_NEXT": "sk_" + "f" * 32},
        "NEUROON_API_KEY_NEXT",
    ),
    ({**HISSUNO, "HISSUNO_SECRET_KEY": "sk_live_" + "a" * 32}, "HISSUNO_SECRET_KEY"),
]


@pytest.mark.parametrize(("env", "name"), VENDOR_KEYS)
def test_every_vendor_key_that_anyone_may_know_is_refused(env: dict[str, str], name: str) -> None:
    found = problems(env)

    assert [p.split(":")[0] for p in found] == [name]
    assert "set the key the vendor issued you" in found[0]
    assert env[name] not in found[0]


def test_every_secret_setting_is_tried_here() -> None:
    """A new secret setting (a new vendor's key) gets a row above."""
    assert {"SESSION_SECRET", *(name for _, name in VENDOR_KEYS)} == set(SECRET_NAMES)


def test_a_secret_read_from_its_file_is_checked_too(tmp_path: Path) -> None:
    path = tmp_path / "session_secret"
    path.write_text("replace-with-at-least-32-random-characters-0123456789\n")
    env = {k: v for k, v in VALID.items() if k != "SESSION_SECRET"}

    found = problems({**env, "SESSION_SECRET_FILE": str(path)})

    assert found[0].startswith("SESSION_SECRET (read from SESSION_SECRET_FILE): is a value")


@pytest.mark.parametrize(
    "url",
    [
        "redis://:changeme@127.0.0.1:6379/0",
        "redis://default:password@127.0.0.1:6379/0",
        "redis://127.0.0.1:6379/0?password=your-redis-password-here",
        "redis+sentinel://s1:26379/m?sentinel_password=hunter2-pw",
        "rediss+cluster://:xxxx-xxxx@n1:7000",
    ],
)
def test_a_redis_password_anyone_may_know_is_refused(url: str) -> None:
    found = problems({**VALID, "CACHE_URL": url})

    assert [p.split(":")[0] for p in found] == ["CACHE_URL"]
    assert "its password" in found[0]
    for piece in ("changeme", "password@", "your-redis", "hunter2", "xxxx-"):
        assert piece not in found[0]


def test_a_random_redis_password_is_accepted() -> None:
    password = fresh_secret()
    settings = Settings.from_env({**VALID, "CACHE_URL": f"redis://:{password}@h:6379/0"})

    assert password in settings.secrets


def _documented() -> list[tuple[str, str, str]]:
    """Every value the docs and the `.env.example` give a secret setting (NAME=value,
    `NAME: "value"`, `secret_key="value"`), and every password written in a Redis URL
    there: (file, name, value)."""
    files = [ROOT / "README.md", ROOT / ".env.example", *sorted((ROOT / "docs").rglob("*.md"))]
    names = "|".join(SECRET_NAMES)
    # NAME=value (a .env, a shell) or NAME: "value" (YAML); not "NAME: the …" in prose.
    assignment = re.compile(rf"\b({names})(?:=|:\s*[\"'])[\"']?([^\s\"'`|#]*)")
    password = re.compile(r"rediss?(?:\+\w+)?://[^\s@/`|]*?:([^\s@/`|]+)@")
    # The session middleware's secret in a code block (the same as SESSION_SECRET).
    literal = re.compile(r"secret_key\s*=\s*[\"']([^\"']*)[\"']")
    found = []
    for path in files:
        text = path.read_text()
        found += [(path.name, name, value) for name, value in assignment.findall(text)]
        found += [(path.name, "CACHE_URL", value) for value in password.findall(text)]
        found += [(path.name, "SESSION_SECRET", value) for value in literal.findall(text)]
    return found


def test_every_secret_the_docs_show_is_refused() -> None:
    """A secret written in the docs is published: a merchant who copies it must be
    stopped. (Empty values and `…` are how the docs leave one out.)"""
    shown = [(where, name, value) for where, name, value in _documented() if value]

    assert shown, "the scan found no secret setting in the docs: is the pattern right?"
    accepted = [(where, name, value) for where, name, value in shown if refusal(value) is None]
    assert not accepted
