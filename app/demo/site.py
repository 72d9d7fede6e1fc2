"""The demo's stand-in for the merchant's own site: a home page and a login form.

It logs users in the way a merchant's Starlette or FastAPI app would: Starlette's
own `SessionMiddleware`, sharing `SESSION_SECRET` with the proxy.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from urllib.parse import parse_qs, unquote

from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import InvalidEmail
from ..rendering import render
from ..responses import BASE_HEADERS
from ..security.identity import validate_email
from ..settings import Settings

MAX_FORM_BYTES = 4096


def safe_next(value: str, default: str = "/") -> str:
    """A same-origin path to go to after login; anything else becomes `default`.

    Browsers treat `//host`, `/\\host` and paths with control characters or
    whitespace as ways off-site, so those are refused after percent-decoding too.
    """
    decoded = unquote(value)
    for candidate in (value, decoded):
        if not candidate.startswith("/") or candidate.startswith(("//", "/\\")):
            return default
        if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in candidate):
            return default
    return value


class OneVary:
    """Sends `Vary` once, each name in it once.

    The pages say `Vary: Cookie` (BASE_HEADERS), and so does `SessionMiddleware` when a
    page reads the session, appending to what is there without looking. Outside it,
    this merges every `Vary` line into one header of distinct names (or `*`).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_one_vary(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = one_vary(list(message.get("headers", [])))
            await send(message)

        await self.app(scope, receive, send_with_one_vary)


def one_vary(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` with all `Vary` values as one header, duplicates (any case) dropped."""
    names: dict[bytes, bytes] = {}
    for key, value in headers:
        if key.lower() == b"vary":
            for name in value.split(b","):
                if name.strip():
                    names.setdefault(name.strip().lower(), name.strip())
    if not names:
        return headers
    vary = b"*" if b"*" in names else b", ".join(names.values())
    return [(k, v) for k, v in headers if k.lower() != b"vary"] + [(b"vary", vary)]


def site_routes(
    settings: Settings, upstream_url: str, *, widgets: Sequence[tuple[str, str, str]] = ()
) -> list[Route]:
    """The shop's pages; `widgets` (name, vendor, mount path), when several are mounted
    (`demo --config`), are each framed on its home page."""
    session = [
        Middleware(OneVary),
        Middleware(
            SessionMiddleware,
            secret_key=settings.session_secret.reveal(),
            session_cookie=settings.session_cookie,
            max_age=settings.session_max_age,
            # The demo's own login cookie, on plain http://127.0.0.1 (the proxy only
            # reads a session cookie; the merchant's app sets its flags).
            same_site="lax",
            https_only=False,
        ),
    ]

    async def home(request: Request) -> Response:
        html = render(
            "demo/home.html",
            email=request.session.get("email"),
            csrf=request.session.setdefault("csrf", secrets.token_urlsafe(24)),
            root=request.scope.get("root_path", ""),
            # Extra pages of a vendor that has several (type/id widgets), linked.
            widgets=getattr(settings.vendor, "widgets", ()),
            provider=settings.token_provider,
            upstream=upstream_url,
            mounted=widgets,
        )
        return HTMLResponse(html, headers=BASE_HEADERS)

    async def login(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        # One CSRF token per session: a form posted from elsewhere can't know it.
        csrf = request.session.setdefault("csrf", secrets.token_urlsafe(24))
        if request.method == "GET":
            target = request.query_params.get("next", f"{root}/")
            return _login_form(root, target, csrf, "", "", 200)
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            return _login_form(root, f"{root}/", csrf, "", "That form was too large.", 413)
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        email, target = form.get("email", "").strip(), form.get("next", f"{root}/")
        if not hmac.compare_digest(form.get("csrf", "").encode(), csrf.encode()):
            error = "That form had expired. Please sign in again."
            return _login_form(root, target, csrf, email, error, 403)
        try:
            request.session["email"] = validate_email(email)
        except InvalidEmail:
            error = "Please enter a valid email address."
            return _login_form(root, target, csrf, email, error, 400)
        return RedirectResponse(safe_next(target, f"{root}/"), status_code=303)

    async def logout(request: Request) -> Response:
        form = parse_qs((await request.body())[:MAX_FORM_BYTES].decode("utf-8", "replace"))
        sent = form.get("csrf", [""])[0].encode()
        if hmac.compare_digest(sent, request.session.get("csrf", "").encode()):
            request.session.clear()
        return RedirectResponse(f"{request.scope.get('root_path', '')}/", status_code=303)

    return [
        Route("/", home, methods=["GET"], middleware=session),
        Route("/login", login, methods=["GET", "POST"], middleware=session),
        Route("/logout", logout, methods=["POST"], middleware=session),
    ]


def _login_form(
    root: str, next_path: str, csrf: str, email: str, error: str, status: int
) -> Response:
    html = render("demo/login.html", root=root, next=next_path, csrf=csrf, email=email, error=error)
    return HTMLResponse(html, status_code=status, headers=BASE_HEADERS)
