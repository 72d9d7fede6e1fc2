"""The proxy as a merchant installs it: `widget_proxy`, never `app`.

A merchant's FastAPI project very often is a package called `app`. The proxy's
source folder has that name too, so it is installed and imported as `widget_proxy`;
these tests build such a project, mount the proxy in it and use it in Chromium, and
check that the wheel carries the package, its pages and its vendors' files under
that name only.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.support import EMAIL, LeakScanner, free_port, scanning_client, wait_until
from tests.support.browser import chromium
from widget_proxy.providers.returningai import ReturningAIStandIn

ROOT = Path(__file__).resolve().parents[2]

# The merchant's own package, named as FastAPI's "bigger applications" layout names it.
MERCHANT_INIT = '''\
"""The merchant's own application package."""
MERCHANT = True
'''
MERCHANT_MAIN = """\
import os
from contextlib import asynccontextmanager
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from starlette.middleware.sessions import SessionMiddleware

import app  # the merchant's package, not the proxy
import widget_proxy
from widget_proxy import Settings, create_app

proxy = create_app(Settings.from_env(os.environ))


@asynccontextmanager
async def lifespan(api):
    async with proxy.router.lifespan_context(proxy):
        yield


api = FastAPI(lifespan=lifespan)
api.add_middleware(
    SessionMiddleware, secret_key=os.environ["SESSION_SECRET"], https_only=False
)


@api.get("/whoami", response_class=PlainTextResponse)
async def whoami():
    return f"merchant={app.MERCHANT} proxy={widget_proxy.__name__}"


@api.get("/login", response_class=HTMLResponse)
async def login_form(next: str = "/"):
    return (
        '<form method="post"><input id="email" name="email">'
        f'<input type="hidden" name="next" value="{next}"><button type="submit">Go</button>'
        "</form>"
    )


@api.post("/login")
async def login(request: Request):
    form = parse_qs((await request.body()).decode())
    request.session["email"] = form["email"][0]
    return RedirectResponse(form["next"][0], status_code=303)


api.mount("/rewards", proxy)
"""


@pytest.fixture
def merchant_project(
    tmp_path: Path, vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner
) -> Iterator[str]:
    """A merchant's project with its own `app` package, served by uvicorn in its own folder."""
    package = tmp_path / "app"
    package.mkdir()
    (package / "__init__.py").write_text(MERCHANT_INIT)
    (package / "main.py").write_text(textwrap.dedent(MERCHANT_MAIN))
    secret = secrets.token_urlsafe(32)
    leak_scanner.add(secret)
    env = {
        "PATH": os.environ.get("PATH", ""),
        **vendor.proxy_env(upstream),
        "SESSION_SECRET": secret,
        "LOGIN_URL": "/login",
    }
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "app.main:api", "--port", str(port)]
    log = tmp_path / "merchant.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    try:
        with scanning_client(leak_scanner, timeout=2) as client:

            def up() -> bool:
                if process.poll() is not None:
                    raise AssertionError(f"the merchant app exited: {log.read_text()[-2000:]}")
                try:
                    return client.get(f"{url}/whoami").status_code == 200
                except httpx2.TransportError:
                    return False

            wait_until(up, timeout=30)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.mark.slow
def test_a_merchant_package_named_app_keeps_its_name(
    merchant_project: str, leak_scanner: LeakScanner
) -> None:
    with scanning_client(leak_scanner, timeout=10) as client:
        answer = client.get(f"{merchant_project}/whoami")

    assert answer.text == "merchant=True proxy=widget_proxy"


@pytest.mark.slow
@pytest.mark.browser
def test_the_widget_works_mounted_in_a_merchant_app_package(merchant_project: str) -> None:
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{merchant_project}/rewards/widget")
        assert page.url == f"{merchant_project}/login?next=%2Frewards%2Fwidget"
        page.fill("#email", EMAIL)
        page.click("button[type=submit]")
        page.wait_for_url(f"{merchant_project}/rewards/widget")

        greeting = page.locator("#greeting")
        assert greeting.text_content(timeout=10_000) == f"Hello, {EMAIL}!"


@pytest.mark.slow
def test_the_wheel_carries_widget_proxy_and_no_app(tmp_path: Path) -> None:
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("widget_proxy-*.whl")
    names = zipfile.ZipFile(wheel).namelist()

    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"widget_proxy"}
    for expected in (
        "widget_proxy/__init__.py",
        "widget_proxy/py.typed",
        "widget_proxy/templates/error.html",
        "widget_proxy/templates/providers/neuroon.html",
        "widget_proxy/providers/returningai/vendor/widget.html",
        "widget_proxy/providers/neuroon/vendor/neuroon.js",
    ):
        assert expected in names, expected
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "widget-proxy = widget_proxy.__main__:main"
        in zipfile.ZipFile(wheel).read(entry_points).decode()
    )
