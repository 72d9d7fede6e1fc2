"""A config file's TOML read into setting values, as the environment holds them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import fifo
from widget_proxy.config.tables import MAX_CONFIG_FILE, read_tables


def test_values_are_written_as_the_environment_holds_them(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        "LOG_EMAILS = true\nUPSTREAM_DEADLINE = 2.0\nRATE_LIMIT_PER_MINUTE = 60\n"
        'ALLOWED_ORIGINS = ["https://a.example", "https://b.example"]\n'
        'FRAME_ANCESTORS = ["\'self\'", "https://a.example"]\n'
        '[widgets.w]\nmount = "/w"\nTOKEN_PROVIDER = "hissuno"\n'
    )
    found = read_tables(path)
    assert found.problems == []
    assert found.shared == {
        "LOG_EMAILS": "true",
        "UPSTREAM_DEADLINE": "2",
        "RATE_LIMIT_PER_MINUTE": "60",
        "ALLOWED_ORIGINS": "https://a.example,https://b.example",
        "FRAME_ANCESTORS": "'self' https://a.example",
    }
    assert found.widgets == {"w": {"mount": "/w", "TOKEN_PROVIDER": "hissuno"}}


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("X = 1\n", "no [widgets.NAME] table"),
        ("widgets = 3\n", "no [widgets.NAME] table"),
        ("[widgets]\nw = 1\n", "widgets.w: must be a table"),
        ("X = \n", "Invalid value"),
        ('[widgets.w]\nmount = "/w"\nWHEN = 1979-05-27\n', "widgets.w: WHEN: a date"),
        ('[widgets.w]\nmount = "/w"\nT = {a = 1}\n', "widgets.w: T: is a table"),
        ('LIST = [1, 2]\n[widgets.w]\nmount = "/w"\n', "LIST: a list is not"),
    ],
)
def test_what_cannot_be_read_names_its_key(tmp_path: Path, text: str, said: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert any(said in problem for problem in read_tables(path).problems)


def test_a_missing_a_huge_a_binary_or_a_fifo_file_is_a_problem(tmp_path: Path) -> None:
    assert "cannot read" in read_tables(tmp_path / "none.toml").problems[0]
    with fifo(tmp_path / "fifo.toml") as path:  # refused at once, not waited on
        assert "is not a regular file (a FIFO)" in read_tables(path).problems[0]
    huge = tmp_path / "huge.toml"
    huge.write_text("#" * (MAX_CONFIG_FILE + 1))
    assert "larger than" in read_tables(huge).problems[0]
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe")
    assert "not UTF-8" in read_tables(binary).problems[0]
