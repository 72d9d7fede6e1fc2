"""What `serve`'s own flags rule out (`serve_problems`), as the command says it."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.processes import serve_refused


def test_serve_refuses_proxy_headers_with_header_identity(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "WIDGET_BASE_URL": "https://widgets.example.com",
        "WIDGET_API_KEY": "k",
        "WIDGET_COMMUNITY_ID": "c",
        "WIDGET_ID": "w",
        "SESSION_SECRET": "s" * 32,
        "IDENTITY_SOURCE": "header",
        "IDENTITY_PROXIES": "127.0.0.1",
    }
    result = serve_refused(tmp_path, env, "--proxy-headers")

    assert result.returncode == 2
    assert "--proxy-headers hides the direct peer that IDENTITY_SOURCE=header" in result.stderr
