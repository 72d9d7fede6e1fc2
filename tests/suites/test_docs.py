"""The README and the docs site: short, built strictly, and their examples run as written.

The blocks a merchant copies are found by their markers (`tests/support/docs.py`) and
run here: the README's `.env` read as settings, its FastAPI `app/main.py` served by
uvicorn with the README's command against a stand-in vendor and behind the README's
nginx block, and a vendor's stand-in checked by `widget-proxy check`. The standalone
nginx samples of docs/operations.md run in tests/suites/test_operations.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import jwt
import pytest
from dotenv import dotenv_values
from markdown.extensions.toc import slugify

from tests.support import (
    EMAIL,
    LeakScanner,
    scanning_client,
    token_in,
    unavailable,
    wait_until,
)
from tests.support.docs import DOCS, README, ROOT, block, marked_blocks
from tests.support.nginx import nginx
from tests.support.processes import free_port
from tests.support.vendors import HISSUNO_KEY, problems
from widget_proxy.providers.hissuno import HissunoStandIn
from widget_proxy.providers.returningai import ReturningAIStandIn
from widget_proxy.settings import Settings, all_options

README_MAX_LINES = 300
# Every marked block, and the README's own: what a merchant copies.
MARKED = {
    "env", "fastapi-app", "fastapi-run", "nginx-mounted", "nginx-serve",
    "nginx-oauth2-proxy", "standin", "standin-check",
}  # fmt: skip
IN_THE_README = {"env", "fastapi-app", "fastapi-run", "nginx-mounted", "standin", "standin-check"}
# What the README's `.env` leaves for the merchant to fill in: its Returning.AI store's,
# and the Hissuno chat's beside it.
BLANKS = {"WIDGET_COMMUNITY_ID", "WIDGET_ID", "WIDGET_API_KEY", "SESSION_SECRET"}
CHAT_BLANKS = {"HISSUNO_PROJECT_ID", "HISSUNO_SCRIPT_URL", "HISSUNO_SECRET_KEY"}
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_readme_is_read_in_five_minutes() -> None:
    lines = README.read_text().splitlines()

    assert len(lines) <= README_MAX_LINES, "move the detail to a page of docs/"


def test_every_marked_block_is_one_text_wherever_it_is() -> None:
    found = marked_blocks()

    assert set(found) == MARKED
    readme = {name for name, copies in found.items() if README in {p for p, _ in copies}}
    assert readme == IN_THE_README
    for name in found:
        block(name)  # every copy the same


def anchors(page: Path) -> set[str]:
    """The anchors MkDocs gives `page`'s headings."""
    headings = re.findall(r"(?m)^#{1,6} (.+)$", re.sub(r"(?ms)^```.*?^```", "", page.read_text()))
    return {slugify(re.sub(r"[`*]", "", heading), "-") for heading in headings}


def test_the_readmes_links_reach_a_file_and_a_heading() -> None:
    # MkDocs checks the site's own links; the README is not one of its pages.
    links = [link for link in LINK.findall(README.read_text()) if "://" not in link]

    assert links
    for link in links:
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.is_file(), f"the README links to {link}, which is no file"
        if anchor:
            assert anchor in anchors(target), f"{path} has no heading for #{anchor}"


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    try:
        import mkdocs  # noqa: F401  (the docs extra, locked in requirements/test.txt)
    except ImportError:
        unavailable("mkdocs is not installed (the docs extra: requirements/test.txt)")
    # Not --quiet: it hides the warnings from --strict too, and a broken link passes.
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict",
         "--config-file", str(config), "--site-dir", str(site)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    built = mkdocs_build(ROOT / "mkdocs.yml", tmp_path / "site")

    assert built.returncode == 0, built.stderr[-3000:]
    settings = (tmp_path / "site" / "settings" / "index.html").read_text()
    assert all(f"<code>{option.name}</code>" in settings for option in all_options())
    benchmarks = (tmp_path / "site" / "benchmarks" / "index.html").read_text()
    first = (ROOT / "BENCHMARKS.md").read_text().splitlines()[0].lstrip("# ")
    assert first in benchmarks  # BENCHMARKS.md, included
    assert (tmp_path / "site" / "bench.svg").is_file()  # and its figure, where it points
    assert "mkdocs build --strict" in (ROOT / ".ci" / "run").read_text()


def test_a_broken_anchor_fails_the_build(tmp_path: Path) -> None:
    # The configuration's validation settings, not only MkDocs' defaults, must catch it.
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path)
    shutil.copy(ROOT / "BENCHMARKS.md", tmp_path)
    index = tmp_path / "docs" / "index.md"
    index.write_text(index.read_text() + "\n[gone](settings.md#no-such-heading)\n")

    built = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")

    assert built.returncode != 0
    assert "#no-such-heading" in built.stderr


def readme_env() -> dict[str, str]:
    values = dotenv_values(stream=io.StringIO(block("env")))
    return {name: value or "" for name, value in values.items()}


def filled_in(
    vendor: ReturningAIStandIn, upstream: str, chat: dict[str, str] | None = None
) -> dict[str, str]:
    """The README's `.env` as a merchant fills it in, here with a stand-in's values (and
    `chat`: the Hissuno stand-in's settings, or placeholders of the right shape)."""
    given = vendor.proxy_env(upstream)
    env = readme_env()
    chat = chat or {
        "HISSUNO_PROJECT_ID": "p-1",
        "HISSUNO_SCRIPT_URL": "https://cdn.example/h.js",
        "HISSUNO_SECRET_KEY": HISSUNO_KEY,
    }
    return {
        **env,
        **{name: given[name] for name in BLANKS - {"SESSION_SECRET"}},
        **{name: chat[name] for name in CHAT_BLANKS},
        "SESSION_SECRET": secrets.token_urlsafe(48),
    }


def test_the_readme_env_is_a_proxys_settings(vendor: ReturningAIStandIn, upstream: str) -> None:
    env = readme_env()
    known = {option.name for option in all_options()}

    assert set(env) <= known
    assert {name for name, value in env.items() if not value} == BLANKS | CHAT_BLANKS
    # As written, it starts nothing, and says which lines to fill in (each widget's).
    chat = env | {"TOKEN_PROVIDER": "hissuno"}
    assert {problem.split(":")[0] for problem in problems(env)} == BLANKS
    assert {problem.split(":")[0] for problem in problems(chat)} == CHAT_BLANKS | {"SESSION_SECRET"}
    settings = Settings.from_env(filled_in(vendor, upstream))
    assert settings.token_provider == "returningai"
    assert settings.login_url == "/login"
    assert Settings.from_env(filled_in(vendor, upstream) | {"TOKEN_PROVIDER": "hissuno"})


# The merchant's own sign-in, which the README leaves to them: it signs a user in through
# the app's own SessionMiddleware, so the cookie the proxy reads is the one the app writes.
SIGN_IN = """\
from fastapi import Request

from app.main import app


@app.post("/test-sign-in")
async def sign_in(request: Request) -> dict[str, str]:
    request.session["email"] = (await request.json())["email"]
    return {}
"""


@contextmanager
def merchant_app(tmp_path: Path, env: dict[str, str], scanner: LeakScanner) -> Iterator[str]:
    """The README's `app/main.py` and `.env` in a project folder, served by the README's
    uvicorn command (another port; `signin:app` is that app with a sign-in route)."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "main.py").write_text(block("fastapi-app"))
    (tmp_path / "signin.py").write_text(SIGN_IN)
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    command = shlex.split(block("fastapi-run"))
    assert command[:2] == ["uvicorn", "app.main:app"]
    port = free_port()
    args = " ".join(command[2:]).replace("--port 8000", f"--port {port}").split()
    log = tmp_path / "merchant.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "signin:app", *args],
            cwd=tmp_path,
            env={"PATH": os.environ.get("PATH", "")},  # the settings come from .env only
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the app exited: {log.read_text()[-3000:]}")
        try:
            return httpx2.get(f"{url}/rewards/healthz", timeout=1).status_code == 200
        except httpx2.TransportError:
            return False

    try:
        wait_until(up, timeout=30)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
        scanner.check("the app's log", log.read_text())


@pytest.mark.slow
def test_the_readme_app_serves_the_widget_alone_and_behind_the_readme_nginx(
    tmp_path: Path, vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner
) -> None:
    # Hissuno's page is signed here: its stand-in's settings, no call to it on the way.
    chat = HissunoStandIn(project_id="readme-chat", secret_key=HISSUNO_KEY).proxy_env(upstream)
    env = filled_in(vendor, upstream, chat) | {"WIDGET_BASE_URL": upstream}  # the stand-in
    leak_scanner.add(env["SESSION_SECRET"], env["WIDGET_API_KEY"], HISSUNO_KEY)
    with (
        merchant_app(tmp_path, env, leak_scanner) as url,
        scanning_client(leak_scanner, timeout=30) as client,
    ):
        anonymous = client.get(f"{url}/rewards/widget")
        signed_in = client.post(f"{url}/test-sign-in", json={"email": EMAIL})
        set_cookie = signed_in.headers["set-cookie"]
        cookie = {"cookie": set_cookie.split(";")[0]}
        page = client.get(f"{url}/rewards/widget", headers=cookie)
        chat_page = client.get(f"{url}/support/widget", headers=cookie)
        renewed = client.post(f"{url}/rewards/widget/token", headers={**cookie, "origin": url})
        backend = url.removeprefix("http://")
        with nginx(tmp_path, block("nginx-mounted"), backend) as base:
            proxied = client.get(f"{base}/rewards/widget", headers=cookie)
            renewed_there = client.post(
                f"{base}/rewards/widget/token", headers={**cookie, "origin": base}
            )
            hidden = [client.get(f"{base}/rewards/{path}") for path in ("metrics", "readyz")]
    log = (tmp_path / "merchant.log").read_text()

    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=%2Frewards%2Fwidget"
    assert {"secure", "httponly", "samesite=lax"} <= set(re.split(r";\s*", set_cookie.lower()))
    assert page.status_code == 200
    assert chat_page.status_code == 200  # the second vendor, its loader page (signed here)
    assert "readme-chat" in chat_page.text
    claims = jwt.decode(token_in(page.text), vendor.signing_key, algorithms=["HS256"])
    assert claims["email"] == EMAIL  # the user the app's own session names
    assert renewed.status_code == 200
    assert renewed.json()["token"]
    assert proxied.status_code == 200
    assert token_in(proxied.text)
    assert renewed_there.status_code == 200  # same-origin: nginx passed host and scheme
    assert [answer.status_code for answer in hidden] == [404, 404]
    # The proxy's request lines, through the app's logging: JSON, the email masked.
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(200 in line.values() and "/widget" in json.dumps(line) for line in lines)
    assert EMAIL not in log
    assert "Traceback" not in log


@pytest.mark.slow
def test_the_readme_stand_in_passes_the_readme_check(tmp_path: Path) -> None:
    # The README's commands use the checkout's .venv: the one running these tests.
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    bash = shutil.which("bash")
    assert bash is not None
    dotenv = tmp_path / ".env"
    standin = subprocess.Popen(
        [bash, "-c", block("standin")], cwd=tmp_path, env=env, start_new_session=True
    )

    def written() -> bool:
        if standin.poll() is not None:
            raise AssertionError(f"the stand-in exited with {standin.returncode}")
        return dotenv.exists() and "SESSION_SECRET=" in dotenv.read_text()

    try:
        wait_until(written, timeout=30)
        check = subprocess.run(
            [bash, "-c", block("standin-check")],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        with contextlib.suppress(ProcessLookupError):  # (gone already: it failed)
            os.killpg(standin.pid, signal.SIGTERM)
        standin.wait(timeout=15)

    assert check.returncode == 0, check.stdout + check.stderr
    assert "⚠" not in check.stdout  # every step proven against the stand-in
    settings = dotenv_values(dotenv)
    for name in ("SESSION_SECRET", "WIDGET_API_KEY"):
        value = settings.get(name)
        assert value
        assert value not in check.stdout + check.stderr
