"""Neuroon's settings group: its documented defaults and what it refuses."""

from __future__ import annotations

import secrets

import pytest

from tests.support.vendors import NEUROON, problems
from widget_proxy.settings import Settings


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
        ({"NEUROON_THEME": "blue"}, "NEUROON_THEME: 'blue' is not one of auto, light, dark"),
        ({"NEUROON_POSITION": "top"}, "NEUROON_POSITION: 'top' is not one of inline, floating"),
        ({"NEUROON_TOKEN_MODE": "local", "NEUROON_API_KEY_NEXT": "sk_" + secrets.token_hex(16)},
         "NEUROON_API_KEY_NEXT: only used with NEUROON_TOKEN_MODE=remote"),
        ({"NEUROON_API_KEY_NEXT": "sk_short"}, "NEUROON_API_KEY_NEXT: must be sk_"),
    ],
)  # fmt: skip
def test_neuroon_refusals(extra: dict[str, str], expected: str) -> None:
    found = problems({**NEUROON, **extra})

    assert len(found) == 1, found
    assert found[0].startswith(expected), found
