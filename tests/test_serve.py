"""What `serve`'s own flags rule out (`serve_problems`), as the command says it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import fresh_secret
from tests.support.processes import serve_refused
from widget_proxy.serve import uvicorn_trust


def test_serve_refuses_proxy_headers_with_header_identity(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "WIDGET_BASE_URL": "https://widgets.example.com",
        "WIDGET_API_KEY": fresh_secret(),
        "WIDGET_COMMUNITY_ID": "c",
        "WIDGET_ID": "w",
        "SESSION_SECRET": fresh_secret(),
        "IDENTITY_SOURCE": "header",
        "IDENTITY_PROXIES": "127.0.0.1",
    }
    result = serve_refused(tmp_path, env, "--proxy-headers")

    assert result.returncode == 2
    assert "--proxy-headers hides the direct peer that IDENTITY_SOURCE=header" in result.stderr


@pytest.mark.parametrize(
    ("raw", "trusted"),
    [
        ("127.0.0.1", ["127.0.0.1/32", "::ffff:127.0.0.1/128"]),
        ("10.0.0.0/8 ::1", ["10.0.0.0/8", "::1/128", "::ffff:10.0.0.0/104"]),
        ("::ffff:192.168.0.0/112", ["192.168.0.0/16", "::ffff:192.168.0.0/112"]),
    ],
)
def test_uvicorns_trusted_peers_include_their_ipv4_mapped_form(
    raw: str, trusted: list[str]
) -> None:
    assert uvicorn_trust(raw) == trusted


@pytest.mark.slow
def test_forwarded_allow_ips_is_a_trust_list_like_any_other(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", "")}
    result = serve_refused(
        tmp_path, env, "--proxy-headers", "--forwarded-allow-ips", "::ffff:0:0/96"
    )

    assert result.returncode == 2
    assert "--forwarded-allow-ips: 0.0.0.0/0 trusts at least a /1's worth" in result.stderr
