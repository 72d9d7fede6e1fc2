"""The cache package's own helpers (`url_secrets`, `redacted_url`): a CACHE_URL's password
never shows, redacted or in the settings."""

from __future__ import annotations

import pytest

from tests.support import VALID
from widget_proxy.cache import redacted_url, url_secrets
from widget_proxy.settings import Settings


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://app:hunter2-pw@s1:26379,s2:26380/mymaster/0",
        "rediss+sentinel://:hunter2-pw@s1:26379/m?sentinel_password=hunter2-pw",
        "redis+cluster://app:hunter2-pw@n1:7000,n2:7001",
        "rediss+cluster://:hunter2-pw@n1:7000",
        "redis+cluster://:hunter2%2Dpw@n1:7000",  # percent-encoded: hidden as it is sent
    ],
)
def test_the_password_never_shows(url: str) -> None:
    settings = Settings.from_env({**VALID, "CACHE_URL": url})

    assert "hunter2-pw" in url_secrets(url)
    assert "hunter2-pw" in settings.secrets
    for shown in (redacted_url(url), repr(settings), str(settings)):
        assert "hunter2" not in shown
    assert "n1:7000" in redacted_url(url) or "s1:26379" in redacted_url(url)
