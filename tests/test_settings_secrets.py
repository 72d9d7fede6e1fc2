"""Secrets from files: every secret setting has a `_FILE` form, read, refused with a
reason that never shows the content, and named on the settings page (docs/settings.md)."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from tests.support import VALID, fifo, fresh_secret
from tests.support.processes import refused_by, serve_refused
from tests.support.vendors import problems
from widget_proxy.options import MAX_SECRET_FILE, within
from widget_proxy.settings import Settings, all_options


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
    api_key, session_secret = fresh_secret("key-"), fresh_secret()
    key.write_text(f"  {api_key}\n")
    secret.write_text(session_secret + "\n")
    env = {k: v for k, v in VALID.items() if k not in ("WIDGET_API_KEY", "SESSION_SECRET")}

    settings = Settings.from_env(
        {**env, "WIDGET_API_KEY_FILE": str(key), "SESSION_SECRET_FILE": str(secret)}
    )

    assert settings.vendor.api_key.reveal() == api_key
    assert settings.session_secret.reveal() == session_secret
    assert api_key in settings.secrets


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


@pytest.mark.parametrize(
    ("where", "kind"), [("folder", "a directory"), ("/dev/zero", "a character device")]
)
def test_a_secret_file_that_is_no_regular_file_is_named(
    tmp_path: Path, where: str, kind: str
) -> None:
    path = tmp_path if where == "folder" else Path(where)
    env = {k: v for k, v in VALID.items() if k != "WIDGET_API_KEY"}

    found = problems({**env, "WIDGET_API_KEY_FILE": str(path)})

    assert found == [
        f"WIDGET_API_KEY_FILE: {path} is not a regular file ({kind}); name the file itself"
    ]


@pytest.mark.slow
def test_serve_refuses_a_fifo_as_a_secret_file_at_once(tmp_path: Path) -> None:
    """A FIFO would block the reader until someone writes to it: start-up refuses it
    (exit 2, the path named) instead of hanging."""
    with fifo(tmp_path / "api_key") as path:
        env = {k: v for k, v in VALID.items() if k != "WIDGET_API_KEY"}
        result = serve_refused(tmp_path, {**env, "WIDGET_API_KEY_FILE": str(path)})

    assert result.returncode == 2
    assert f"WIDGET_API_KEY_FILE: {path} is not a regular file (a FIFO)" in result.stderr


def test_a_read_that_takes_too_long_is_a_problem_not_a_hang() -> None:
    """A secret file on a mount that stops answering: the read is given up in time."""
    release = threading.Event()
    try:
        with pytest.raises(ValueError, match=r"cannot read /mnt/k: no answer in 0.05 s"):
            within(0.05, release.wait, "cannot read /mnt/k")
    finally:
        release.set()
    assert within(5, lambda: "value", "unused") == "value"


def test_both_forms_of_a_secret_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "api_key"
    path.write_text("from-the-file")

    found = problems({**VALID, "WIDGET_API_KEY_FILE": str(path)})

    assert found == ["WIDGET_API_KEY: set either WIDGET_API_KEY or WIDGET_API_KEY_FILE, not both"]


def test_a_required_secret_may_come_from_its_file_only(tmp_path: Path) -> None:
    env = {k: v for k, v in VALID.items() if k != "WIDGET_API_KEY"}

    found = problems(env)

    assert [p.split(":")[0] for p in found] == ["WIDGET_API_KEY"]


def test_the_settings_page_names_every_secret_with_a_file_form() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "settings.md").read_text()
    paragraph = text[text.index("## Secrets from files") :].split("\n\n")[1]

    named = re.findall(r"`([A-Z_]+)`", paragraph.split("can instead", 1)[0])

    assert named == [o.name for o in all_options() if o.secret]


@pytest.mark.parametrize("command", ["serve", "check"])
def test_serve_and_check_refuse_the_example_secret(tmp_path: Path, command: str) -> None:
    """The issue: `.env.example` copied and only the vendor lines filled in. Its
    SESSION_SECRET is public, so anyone could sign a session cookie as any user."""
    example = "replace-with-at-least-32-random-characters-0123456789"
    env = {**VALID, "SESSION_SECRET": example}
    result, said = refused_by(command, tmp_path, env)

    assert result.returncode == 2, said
    line = next(line for line in said.splitlines() if "SESSION_SECRET" in line)
    assert "published" in line
    assert line.endswith("make one: python -c 'import secrets; print(secrets.token_urlsafe(48))'")
    assert example not in said
    assert "Traceback" not in said
