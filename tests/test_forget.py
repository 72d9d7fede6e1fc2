"""`widget-proxy forget`: with `memory://`, the running server told (signed); what it
says when it can't, and that it never says an email back."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import LeakScanner, Proxy, free_port, token_in
from tests.support.processes import run_forget
from widget_proxy.providers.returningai import ReturningAIStandIn

EMAIL = "gone@example.com"


def forget(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    (cwd / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return run_forget(cwd, *args)


@pytest.mark.parametrize(
    ("case", "status", "says"),
    [
        ("told", 0, "forgotten: 1 user(s)"),
        ("another secret", 1, "answered 401"),
        ("nobody listening", 1, "nothing forgotten"),
        ("bad email", 2, "exactly one '@'"),
    ],
)
def test_forget_tells_the_running_server(
    case: str, status: int, says: str, tmp_path: Path, make_proxy: Callable[..., Proxy],
    vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner,
) -> None:  # fmt: skip
    proxy = make_proxy()
    cookie = proxy.cookie({"email": EMAIL})
    old = token_in(proxy.get("/widget", headers=cookie).text)
    secret = proxy.settings.session_secret.reveal()
    env = {**vendor.proxy_env(upstream), "SESSION_SECRET": secret, "CACHE_URL": "memory://"}
    url, email = proxy.url, EMAIL
    if case == "another secret":
        env["SESSION_SECRET"] = "another-" + secret
    elif case == "nobody listening":
        url = f"http://127.0.0.1:{free_port()}"
    elif case == "bad email":
        email = "gone.example.com"

    done = forget(tmp_path, env, "--email", email, "--url", url)

    said = done.stdout + done.stderr
    assert done.returncode == status, said
    assert says in said
    assert EMAIL not in said  # never said back
    leak_scanner.check("what forget said", said)  # nor any secret
    forgotten = token_in(proxy.get("/widget", headers=cookie).text) != old
    assert forgotten is (status == 0)


def test_forget_needs_whom(tmp_path: Path) -> None:
    done = run_forget(tmp_path)
    assert done.returncode == 2
    assert "--email" in done.stderr
    assert "--all" in done.stderr
