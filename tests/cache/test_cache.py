"""The cache package's own helpers (`url_secrets`, `redacted_url`): a CACHE_URL's password
never shows, redacted or in the settings."""

from __future__ import annotations

import pytest

from tests.support import VALID, fresh_secret
from widget_proxy.cache import redacted_url, url_secrets
from widget_proxy.settings import Settings


@pytest.mark.parametrize(
    "form",
    [
        "redis+sentinel://app:{pw}@s1:26379,s2:26380/mymaster/0",
        "rediss+sentinel://:{pw}@s1:26379/m?sentinel_password={pw}",
        "redis+cluster://app:{pw}@n1:7000,n2:7001",
        "rediss+cluster://:{pw}@n1:7000",
        "redis+cluster://:{encoded}@n1:7000",  # percent-encoded: hidden as it is sent
    ],
)
def test_the_password_never_shows(form: str) -> None:
    password = fresh_secret("pw-")  # a '-' to percent-encode
    encoded = password.replace("-", "%2D")
    url = form.format(pw=password, encoded=encoded)
    settings = Settings.from_env({**VALID, "CACHE_URL": url})

    assert password in url_secrets(url)
    assert password in settings.secrets
    for shown in (redacted_url(url), repr(settings), str(settings)):
        assert password not in shown
        assert encoded not in shown
    assert "n1:7000" in redacted_url(url) or "s1:26379" in redacted_url(url)
