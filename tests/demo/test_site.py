"""The demo's merchant site: its session cookie, its login form, one Vary."""

from __future__ import annotations

import json
import re
from base64 import b64decode
from collections.abc import Callable, Iterator

import httpx2
import pytest

from tests.support import EMAIL, UNLIMITED, LeakScanner, scanning_client
from widget_proxy.demo import demo_app, demo_settings
from widget_proxy.demo.site import one_vary, safe_next
from widget_proxy.providers.returningai import ReturningAIStandIn
from widget_proxy.servers import BackgroundServer


@pytest.fixture
def demo_site(
    vendor: ReturningAIStandIn, upstream: str, leak_scanner: LeakScanner
) -> Iterator[Callable[..., httpx2.Client]]:
    """Start a demo (merchant site with the proxy mounted); a scanning client for it."""
    servers: list[BackgroundServer] = []
    clients: list[httpx2.Client] = []

    def start(**env: str) -> httpx2.Client:
        settings = demo_settings(vendor, upstream, **{**UNLIMITED, **env})
        leak_scanner.add(*settings.secrets)
        server = BackgroundServer(demo_app(settings, upstream), timeout_graceful_shutdown=1)
        servers.append(server.__enter__())
        clients.append(scanning_client(leak_scanner, base_url=server.url, timeout=30))
        return clients[-1]

    yield start
    for client in clients:
        client.close()
    for server in servers:
        server.__exit__(None, None, None)


def session_data(value: str) -> dict[str, object]:
    """What a Starlette session cookie holds (read, not verified)."""
    data = json.loads(b64decode(value.split(".")[0]))
    assert isinstance(data, dict)
    return data


def sessions_set(response: httpx2.Response) -> list[dict[str, object]]:
    """The sessions a response's Set-Cookie headers write."""
    found = []
    for header in response.headers.get_list("set-cookie"):
        name, _, value = header.split(";")[0].partition("=")
        if name.strip() == "session" and value:
            found.append(session_data(value))
    return found


def login(client: httpx2.Client, email: str = EMAIL, **form: str) -> httpx2.Response:
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    return client.post("/login", data={"email": email, "csrf": csrf.group(1), **form})


@pytest.mark.parametrize("env", [{}, {"SESSION_HTTPS_ONLY": "true", "SESSION_SAME_SITE": "strict"}])
def test_the_demo_sets_its_own_login_cookie(
    demo_site: Callable[..., httpx2.Client], env: dict[str, str]
) -> None:
    """HttpOnly, SameSite=Lax, not Secure: the demo runs on plain http://127.0.0.1. The
    cookie's flags are the app's that signs users in (the demo's here), not settings of
    the proxy, which only reads the cookie: the retired variables change nothing."""
    response = login(demo_site(**env))

    assert [session.get("email") for session in sessions_set(response)] == [EMAIL]
    cookie = response.headers["set-cookie"].lower()
    attributes = {part.strip() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=lax"} <= attributes
    assert "secure" not in attributes


def test_demo_pages_send_vary_once(demo_site: Callable[..., httpx2.Client]) -> None:
    client = demo_site()
    home = client.get("/")
    form = client.get("/login")
    refused = client.post("/login", data={"email": EMAIL, "csrf": "forged"})

    for response in (home, form, refused):
        assert response.headers.get_list("vary") == ["Cookie"]


def test_one_vary_merges_lines_and_drops_repeats() -> None:
    headers = [(b"vary", b"Cookie"), (b"x-a", b"1"), (b"Vary", b"cookie, Origin"), (b"vary", b"")]

    assert one_vary(headers) == [(b"x-a", b"1"), (b"vary", b"Cookie, Origin")]
    assert one_vary([(b"vary", b"Cookie"), (b"vary", b"*")]) == [(b"vary", b"*")]
    assert one_vary([(b"x-a", b"1")]) == [(b"x-a", b"1")]


@pytest.mark.parametrize("csrf", ["", "forged-token"])
def test_login_form_refuses_a_post_without_its_csrf_token(
    demo_site: Callable[..., httpx2.Client], csrf: str
) -> None:
    client = demo_site()
    form = client.get("/login")
    response = client.post("/login", data={"email": EMAIL, "csrf": csrf})
    widget = client.get("/widget")

    assert response.status_code == 403
    assert all("email" not in session for session in sessions_set(response))
    held = session_data(client.cookies["session"])  # what the browser keeps afterwards
    assert held == sessions_set(form)[-1]  # the form's session, holding its CSRF token
    assert "email" not in held  # the refused post signed nobody in
    assert widget.status_code == 303  # still anonymous: sent to the login page


@pytest.mark.parametrize(
    ("target", "landing"),
    [
        ("/widget?color=dark", "/widget?color=dark"),
        ("/", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example", "/"),
        ("http:evil.example", "/"),
        ("/%2F%2Fevil.example", "/"),
        ("/%5Cevil.example", "/"),
        ("%2F%2Fevil.example", "/"),
        (" //evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("/%09/evil.example", "/"),
        ("/\r\nLocation: https://evil.example", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_next_only_goes_to_same_origin_paths(
    demo_site: Callable[..., httpx2.Client], target: str, landing: str
) -> None:
    assert safe_next(target) == landing
    response = login(demo_site(), next=target)

    assert response.status_code == 303
    assert response.headers["location"] == landing
