"""A stand-in for Neuroon's widget API, checking what Neuroon checks.

`POST /api/shops/{shop}/widget-token` (with `X-Shop-API-Key`) issues an opaque token,
`wt_` and random characters, as Neuroon's newer pages describe it: nothing in it can be
read, so a proxy that assumed a format would fail here. `X-Widget-Token` is accepted if
it is such a token issued within the last 24 h, or a token signed locally with the
shop's key (its HMAC recomputed in constant time, its timestamp within the last 24 h).
The `Origin` must be blank or
one of the allowed origins, the shop URL, or (by host suffix, any port) localhost,
127.0.0.1 or neuroon.ai; each shop has a per-minute rate limit. Errors use Neuroon's
envelope `{timestamp, status, error, message, path}`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from base64 import urlsafe_b64decode
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .settings import TOKEN_LIFETIME

_SCRIPT = (Path(__file__).resolve().parent / "vendor" / "neuroon.js").read_bytes()
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "neuroon.ai")


@dataclass
class NeuroonStandIn:
    shop_id: str
    api_key: str
    allowed_origins: tuple[str, ...] = ()
    shop_url: str = ""
    default_hosts: tuple[str, ...] = DEFAULT_HOSTS
    token_lifetime: float = TOKEN_LIFETIME
    rate_limit: int = 600  # per shop per minute
    calls: Counter[str] = field(default_factory=Counter)
    issued: dict[str, float] = field(default_factory=dict)  # opaque token → issue time
    _window: tuple[int, int] = (0, 0)  # (minute, requests in it)

    def proxy_env(self, url: str) -> dict[str, str]:
        return {
            "TOKEN_PROVIDER": "neuroon",
            "NEUROON_SHOP_ID": self.shop_id,
            "NEUROON_API_KEY": self.api_key,
            "NEUROON_API_URL": url,
            "NEUROON_SCRIPT_URL": f"{url}/static/neuroon.js",
        }

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/shops/{shop}/widget-token", self._issue, methods=["POST"]),
                Route("/api/widget/search", self._search, methods=["GET", "OPTIONS"]),
                Route("/static/neuroon.js", self._script, methods=["GET"]),
            ]
        )

    async def _issue(self, request: Request) -> Response:
        self.calls["token_issue"] += 1
        sent = request.headers.get("x-shop-api-key", "")
        if request.path_params["shop"] != self.shop_id:
            return _error(request, 404, "not_found", "Unknown shop")
        if not hmac.compare_digest(sent.encode(), self.api_key.encode()):
            return _error(request, 401, "unauthorized", "Invalid shop API key")
        token = "wt_" + secrets.token_urlsafe(32)
        self.issued[token] = time.time()
        return JSONResponse({"token": token})

    async def _search(self, request: Request) -> Response:
        origin = request.headers.get("origin", "").strip()
        # CORS lets every page read the answer, so a refused origin sees its 403.
        cors = _cors(origin)
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=cors)
        if origin and not self.origin_allowed(origin):
            return _error(request, 403, "forbidden", "Origin not allowed", cors)
        self.calls["search"] += 1
        reason = self.token_problem(request.headers.get("x-widget-token", ""))
        if reason is not None:
            return _error(request, 401, "unauthorized", reason, cors)
        limited = self._over_limit()
        if limited is not None:
            body = {
                "error": "rate_limit_exceeded",
                "message": f"Rate limit of {self.rate_limit} requests per minute exceeded",
                "retryAfter": limited,
                "limit": self.rate_limit,
                "remaining": 0,
            }
            headers = {**cors, "retry-after": str(limited)}
            return JSONResponse(body, status_code=429, headers=headers)
        q = request.query_params.get("q", "")
        results = [{"title": f"{q} {n}", "url": f"/p/{n}"} for n in range(1, 4)] if q else []
        return JSONResponse({"shop": self.shop_id, "query": q, "results": results}, headers=cors)

    async def _script(self, request: Request) -> Response:
        return Response(_SCRIPT, media_type="text/javascript")

    def token_problem(self, token: str) -> str | None:
        """Why Neuroon would refuse this widget token, or None if it accepts it."""
        if not token:
            return "Missing widget token"
        if token in self.issued:
            return (
                None
                if time.time() - self.issued[token] <= self.token_lifetime
                else ("Widget token expired")
            )
        try:
            decoded = urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            shop, issued, signature = decoded.split(":")
            timestamp = int(issued)
        except ValueError:
            return "Invalid widget token"
        message = f"{shop}:{timestamp}".encode()
        expected = hmac.new(self.api_key.encode(), message, hashlib.sha256).hexdigest()
        if shop != self.shop_id or not hmac.compare_digest(expected, signature):
            return "Invalid widget token"
        if not 0 <= time.time() - timestamp <= self.token_lifetime:
            return "Widget token expired"
        return None

    def origin_allowed(self, origin: str) -> bool:
        host = (urlsplit(origin).hostname or "").lower()
        exact = {o.lower().rstrip("/") for o in (*self.allowed_origins, self.shop_url) if o}
        if origin.lower().rstrip("/") in exact:
            return True
        return any(host == h or host.endswith("." + h) for h in self.default_hosts)

    def _over_limit(self) -> int | None:
        minute = int(time.time() // 60)
        start, count = self._window
        count = count + 1 if start == minute else 1
        self._window = (minute, count)
        if count > self.rate_limit:
            return int(60 - time.time() % 60) + 1
        return None


def _cors(origin: str) -> dict[str, str]:
    if not origin:
        return {}
    return {
        "access-control-allow-origin": origin,
        "access-control-allow-headers": "x-widget-token",
        "vary": "Origin",
    }


def _error(
    request: Request, status: int, error: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {
        "timestamp": datetime.now(UTC).isoformat(),
        "status": status,
        "error": error,
        "message": message,
        "path": request.url.path,
    }
    return JSONResponse(body, status_code=status, headers=headers)
