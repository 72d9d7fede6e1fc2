"""The checklist's own rules: a secret is shown by a fingerprint of four characters at most."""

from __future__ import annotations

import io
import re

import pytest

from widget_proxy.check.checklist import Checklist


@pytest.mark.parametrize(
    "secret",
    ["sk_" + "0123456789abcdef" * 2, "sk_live_" + "Ab3_-" * 6 + "xy", "a" * 16, "short-key"],
)
def test_a_fingerprint_shows_at_most_four_characters_of_a_secret(secret: str) -> None:
    shown = Checklist(io.StringIO()).fingerprint(secret)

    revealed = re.sub(r"…|\.\.\.|\(\d+ chars\)|\s", "", shown)
    assert len(revealed) <= 4
    assert secret.endswith(revealed)
    assert f"({len(secret)} chars)" in shown
