"""A stand-in for the Returning.AI widget server, for the demo and the tests.

It checks what the real one checks: the API key and email headers on signin, and
the Bearer token on its API, which it issued itself as an HS256 JWT with `exp`.
It counts every call, so tests can assert how often the proxy came, and answers
conditional page requests with 304 like a well-behaved origin.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

import anyio
import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ...options.parsers import is_segment
from .widgets import WIDGET_TYPES

_VENDOR = Path(__file__).resolve().parent / "vendor"
_PAGE = Template((_VENDOR / "widget.html").read_text("utf-8"))
_ASSETS = {
    "widget.js": ("text/javascript", (_VENDOR / "widget.js").read_bytes()),
    "widget.css": ("text/css", (_VENDOR / "widget.css").read_bytes()),
}
_CORS = {
    "access-control-allow-origin": "*",
    "access-control-allow-headers": "authorization",
    "access-control-max-age": "600",
}


@dataclass
class ReturningAIStandIn:
    """Configuration and call counts of one stand-in vendor."""

    api_key: str
    community_id: str
    signing_key: str
    token_ttl: int = 300
    signin_delay: float = 0.0  # seconds, to play a vendor far away
    page_delay: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)

    def proxy_env(self, url: str) -> dict[str, str]:
        return {
            "TOKEN_PROVIDER": "returningai",
            "WIDGET_BASE_URL": url,
            "WIDGET_API_KEY": self.api_key,
            "WIDGET_COMMUNITY_ID": self.community_id,
            "WIDGET_ID": "demo-store",
            "WIDGETS": "channel/demo-channel,milestone/demo-milestones",
        }

    def issue(self, email: str, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        claims = {
            "sub": email,
            "email": email,
            "iat": issued,
            "exp": issued + self.token_ttl,
            "jti": secrets.token_hex(8),  # each signin's token its own, as a vendor's are
        }
        return jwt.encode(claims, self.signing_key, algorithm="HS256")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/widget/{community}/signin", self._signin, methods=["POST"]),
                Route("/api/widget/me", self._me, methods=["GET", "OPTIONS"]),
                Route("/static/{name}", self._asset, methods=["GET"]),
                Route("/{type}/{id}", self._page, methods=["GET"]),
            ]
        )

    async def _signin(self, request: Request) -> Response:
        self.calls["signin"] += 1
        await anyio.sleep(self.signin_delay)
        if request.path_params["community"] != self.community_id:
            return JSONResponse({"error": "unknown community"}, status_code=404)
        sent = request.headers.get("returningai-api-key", "")
        if not hmac.compare_digest(sent.encode(), self.api_key.encode()):
            return JSONResponse({"error": "invalid api key"}, status_code=401)
        email = request.headers.get("email", "")
        if email.count("@") != 1:
            return JSONResponse({"error": "email header required"}, status_code=400)
        return JSONResponse({"token": self.issue(email)})

    async def _page(self, request: Request) -> Response:
        self.calls["page"] += 1
        await anyio.sleep(self.page_delay)
        kind, ident = request.path_params["type"], request.path_params["id"]
        if kind not in WIDGET_TYPES or not is_segment(ident):
            return HTMLResponse("<h1>Not found</h1>", status_code=404)
        color = "dark" if request.query_params.get("color") == "dark" else "light"
        html = _PAGE.substitute(widget_type=kind, widget_id=ident, color=color)
        etag = '"' + hashlib.sha256(html.encode()).hexdigest()[:16] + '"'
        if request.headers.get("if-none-match") == etag:
            self.calls["page_not_modified"] += 1
            return Response(status_code=304, headers={"etag": etag})
        return HTMLResponse(html, headers={"etag": etag})

    async def _asset(self, request: Request) -> Response:
        asset = _ASSETS.get(request.path_params["name"])
        if asset is None:
            return Response("not found", status_code=404)
        media_type, body = asset
        return Response(body, media_type=media_type, headers={"cache-control": "max-age=300"})

    async def _me(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=_CORS)
        self.calls["api"] += 1
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        claims, reason = self.verify(token)
        if reason is None and scheme.lower() != "bearer":
            reason = "Invalid token"
        if reason is not None:
            return JSONResponse({"error": reason}, status_code=401, headers=_CORS)
        email = str(claims["email"])
        points = int.from_bytes(hashlib.sha256(email.encode()).digest()[:2], "big") % 5000
        return JSONResponse({"email": email, "points": points}, headers=_CORS)

    def verify(self, token: str) -> tuple[dict[str, object], str | None]:
        """The token's claims, or why the widget API refuses it."""
        try:
            claims = jwt.decode(
                token,
                self.signing_key,
                algorithms=["HS256"],
                options={"require": ["exp", "email"]},
            )
        except jwt.ExpiredSignatureError:
            return {}, "Token expired"
        except jwt.InvalidTokenError:
            return {}, "Invalid token"
        return claims, None

    def token_problem(self, token: str) -> str | None:
        return self.verify(token)[1]
