"""A stand-in for Returning.AI's v2 Access Key API and its Widget SDK.

It checks what the real one checks: the access pair (in constant time), and
`userIdentifiers` of `data-*` fields with string values, and it issues real HS256
JWTs (`userIdentifiers`, `iat`, `exp`) with `expiresIn`. Its SDK script defines the
`<rai-*-widget>` elements: each validates its `embed-token` against the API on
connect (as the SDK's access gate does), mounts the bundle from `bundle-url` if set,
and shows "Session expired" once its token's `exp` passes, which is what a page left
open too long would show.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ....options.parsers import is_loopback
from .tokens import TOKEN_PATH

_VENDOR = Path(__file__).resolve().parent / "vendor"
_SCRIPTS = {
    "sdk": (_VENDOR / "rai-widget.iife.js").read_bytes(),
    "bundle": (_VENDOR / "bundle.js").read_bytes(),
}


@dataclass
class ReturningAISdkStandIn:
    access_id: str
    access_key: str
    signing_key: str
    community_id: str = "demo-community"
    token_ttl: int = 900  # the documented 15 minutes
    allowed_origins: tuple[str, ...] = ()  # empty: loopback only, as in development
    calls: Counter[str] = field(default_factory=Counter)
    seen: list[dict[str, str]] = field(default_factory=list)  # userIdentifiers received

    def proxy_env(self, url: str) -> dict[str, str]:
        return {
            "TOKEN_PROVIDER": "returningai-sdk",
            "RETURNINGAI_ACCESS_ID": self.access_id,
            "RETURNINGAI_ACCESS_KEY": self.access_key,
            "RETURNINGAI_API_URL": url,
            "RETURNINGAI_SDK_URL": f"{url}/sdk/rai-widget.iife.js",
            "RETURNINGAI_BUNDLE_URL": f"{url}/bundle/store/widget.js",
            "RETURNINGAI_COMMUNITY_ID": self.community_id,
        }

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(TOKEN_PATH, self._token, methods=["POST"]),
                Route(
                    "/v2/api/widget-access-keys/validate",
                    self._validate,
                    methods=["POST", "OPTIONS"],
                ),
                Route("/sdk/rai-widget.iife.js", self._script("sdk"), methods=["GET"]),
                Route("/bundle/{type}/widget.js", self._script("bundle"), methods=["GET"]),
            ]
        )

    def issue(self, identifiers: dict[str, str], now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        claims = {
            "sub": self.access_id,
            "userIdentifiers": identifiers,
            "iat": issued,
            "exp": issued + self.token_ttl,
            "jti": secrets.token_hex(8),  # two tokens of one second still differ
        }
        return jwt.encode(claims, self.signing_key, algorithm="HS256")

    async def _token(self, request: Request) -> Response:
        self.calls["token"] += 1
        try:
            body = await request.json()
        except ValueError:
            return _refusal(400, "Body must be JSON")
        if not isinstance(body, dict):
            return _refusal(400, "Body must be a JSON object")
        access_id, access_key = body.get("accessId"), body.get("accessKey")
        if not isinstance(access_id, str) or not isinstance(access_key, str):
            return _refusal(400, "accessId and accessKey are required")
        same_id = hmac.compare_digest(access_id.encode(), self.access_id.encode())
        same_key = hmac.compare_digest(access_key.encode(), self.access_key.encode())
        if not (same_id and same_key):
            self.calls["token_refused"] += 1
            return _refusal(401, "Invalid access credentials")
        identifiers = body.get("userIdentifiers")
        problem = _identifiers_problem(identifiers)
        if problem is not None:
            return _refusal(400, problem)
        assert isinstance(identifiers, dict)
        self.seen.append(identifiers)
        token = self.issue(identifiers)
        return JSONResponse(
            {"success": True, "data": {"embedToken": token, "expiresIn": self.token_ttl}}
        )

    async def _validate(self, request: Request) -> Response:
        origin = request.headers.get("origin", "")
        cors = {
            "access-control-allow-origin": origin or "*",
            "access-control-allow-headers": "content-type",
            "vary": "Origin",
        }
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=cors)
        self.calls["validate"] += 1
        if origin and not self.origin_allowed(origin):
            return _refusal(403, "Origin not allowed", cors)
        try:
            body = await request.json()
            token = str(body.get("embedToken", ""))
        except (ValueError, AttributeError):
            token = ""
        claims, problem = self.verify(token)
        if problem is not None:
            return _refusal(401, problem, cors)
        data = {
            "valid": True,
            "userIdentifiers": claims["userIdentifiers"],
            "expiresAt": claims["exp"],
        }
        return JSONResponse({"success": True, "data": data}, headers=cors)

    def _script(self, name: str) -> Any:
        async def script(request: Request) -> Response:
            return Response(_SCRIPTS[name], media_type="text/javascript")

        return script

    def verify(self, token: str) -> tuple[dict[str, Any], str | None]:
        """The embed token's claims, or why Returning.AI refuses it."""
        try:
            claims = jwt.decode(
                token, self.signing_key, algorithms=["HS256"], options={"require": ["exp"]}
            )
        except jwt.ExpiredSignatureError:
            return {}, "Token expired"
        except jwt.InvalidTokenError:
            return {}, "Invalid token"
        if _identifiers_problem(claims.get("userIdentifiers")) is not None:
            return {}, "Invalid token"
        return claims, None

    def token_problem(self, token: str) -> str | None:
        return self.verify(token)[1]

    def origin_allowed(self, origin: str) -> bool:
        if not self.allowed_origins:
            return is_loopback(origin)
        return origin.lower().rstrip("/") in {o.lower().rstrip("/") for o in self.allowed_origins}


def _identifiers_problem(identifiers: object) -> str | None:
    if not isinstance(identifiers, dict) or not identifiers:
        return "userIdentifiers must name at least one identifier field"
    for key, value in identifiers.items():
        if not isinstance(key, str) or not key.startswith("data-"):
            return "userIdentifiers keys must be data-* fields"
        if not isinstance(value, str) or not value:
            return f"userIdentifiers[{key!r}] must be a non-empty string"
    return None


def _refusal(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"success": False, "message": message}, status_code=status, headers=headers)
