"""The demo's stand-in for the merchant's own site: a home page and a login form.

It logs users in the way a merchant's Starlette or FastAPI app would: Starlette's
own `SessionMiddleware`, sharing `SESSION_SECRET` with the proxy.
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote

from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from app.errors import InvalidEmail
from app.identity import validate_email
from app.pages import BASE_HEADERS, render
from app.settings import Settings

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


def site_routes(settings: Settings, upstream_url: str) -> list[Route]:
    session = [
        Middleware(
            SessionMiddleware,
            secret_key=settings.session_secret.reveal(),
            session_cookie=settings.session_cookie,
            max_age=settings.session_max_age,
            same_site="lax",
            https_only=False,
        )
    ]

    async def home(request: Request) -> Response:
        html = render(
            "demo/home.html",
            email=request.session.get("email"),
            root=request.scope.get("root_path", ""),
            widgets=settings.widgets,
            upstream=upstream_url,
        )
        return HTMLResponse(html, headers=BASE_HEADERS)

    async def login(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        if request.method == "GET":
            return _login_form(root, request.query_params.get("next", f"{root}/"), "", "", 200)
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            return _login_form(root, f"{root}/", "", "That form was too large.", 413)
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        email, target = form.get("email", "").strip(), form.get("next", f"{root}/")
        try:
            request.session["email"] = validate_email(email)
        except InvalidEmail:
            return _login_form(root, target, email, "Please enter a valid email address.", 400)
        return RedirectResponse(safe_next(target, f"{root}/"), status_code=303)

    async def logout(request: Request) -> Response:
        request.session.clear()
        return RedirectResponse(f"{request.scope.get('root_path', '')}/", status_code=303)

    return [
        Route("/", home, methods=["GET"], middleware=session),
        Route("/login", login, methods=["GET", "POST"], middleware=session),
        Route("/logout", logout, methods=["POST"], middleware=session),
    ]


def _login_form(root: str, next_path: str, email: str, error: str, status: int) -> Response:
    html = render("demo/login.html", root=root, next=next_path, email=email, error=error)
    return HTMLResponse(html, status_code=status, headers=BASE_HEADERS)
