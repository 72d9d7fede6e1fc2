"""A stand-in for Hissuno's widget API, checking what Hissuno checks.

The `widgetToken` is verified as HS256 with the project's secret and 60 s of clock
tolerance, and must carry `userId`. The origin allow-list takes exact hosts and
`*.domain` wildcards (which also match the bare domain), case-insensitively, on the
host only; an empty list allows every origin, as Hissuno does in development.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_SCRIPT = (Path(__file__).resolve().parent / "vendor" / "hissuno.js").read_bytes()
LEEWAY = 60


@dataclass
class HissunoStandIn:
    project_id: str
    secret_key: str
    allowed_origins: tuple[str, ...] = ()
    calls: Counter[str] = field(default_factory=Counter)

    def proxy_env(self, url: str) -> dict[str, str]:
        return {
            "TOKEN_PROVIDER": "hissuno",
            "HISSUNO_SECRET_KEY": self.secret_key,
            "HISSUNO_PROJECT_ID": self.project_id,
            "HISSUNO_SCRIPT_URL": f"{url}/widget.js",
        }

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/widget/session", self._session, methods=["POST", "OPTIONS"]),
                Route("/widget.js", self._script, methods=["GET"]),
            ]
        )

    async def _session(self, request: Request) -> Response:
        origin = request.headers.get("origin", "")
        # CORS lets every page read the answer, so a refused origin sees its 403.
        cors = {
            "access-control-allow-origin": origin or "*",
            "access-control-allow-headers": "content-type",
            "vary": "Origin",
        }
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=cors)
        if not self.origin_allowed(origin):
            return JSONResponse({"error": "Origin not allowed"}, status_code=403, headers=cors)
        self.calls["session"] += 1
        try:
            body = await request.json()
            token = str(body.get("widgetToken", ""))
        except (ValueError, AttributeError):
            token = ""
        claims, problem = self.verify(token)
        if problem is not None:
            return JSONResponse({"error": problem}, status_code=401, headers=cors)
        answer = {"userId": claims["userId"], "userMetadata": claims.get("userMetadata", {})}
        return JSONResponse(answer, headers=cors)

    async def _script(self, request: Request) -> Response:
        return Response(_SCRIPT, media_type="text/javascript")

    def verify(self, token: str) -> tuple[dict[str, object], str | None]:
        """The token's claims, or why Hissuno refuses it."""
        try:
            claims = jwt.decode(token, self.secret_key, algorithms=["HS256"], leeway=LEEWAY)
        except jwt.ExpiredSignatureError:
            return {}, "Token expired"
        except jwt.InvalidTokenError:
            return {}, "Invalid token"
        if not claims.get("userId"):
            return {}, "Token missing required userId field"
        return claims, None

    def token_problem(self, token: str) -> str | None:
        return self.verify(token)[1]

    def origin_allowed(self, origin: str) -> bool:
        if not self.allowed_origins:
            return True  # development mode, as Hissuno documents it
        host = (urlsplit(origin).hostname or "").lower()
        for entry in (e.lower() for e in self.allowed_origins):
            if entry.startswith("*."):
                if host == entry[2:] or host.endswith(entry[1:]):
                    return True
            elif host == (urlsplit(entry).hostname or entry):
                return True
        return False
