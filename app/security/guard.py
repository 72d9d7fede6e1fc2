"""Refuse cross-site requests from origins outside `ALLOWED_ORIGINS`, before anything else.

A request without `Origin` (a top-level navigation, or a server) passes; one from
the proxy's own origin passes; any other origin must be allowed, or the answer is
403 and nothing is sent upstream. Pure ASGI: a request without `Origin` costs one
scan of its headers.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Scope

from ..errors import OriginNotAllowed
from ..responses import Refusing, error_response
from .forwarded import TrustedProxies
from .origins import OriginPolicy, parse_origin


class OriginGuard(Refusing):
    def __init__(self, app: ASGIApp, policy: OriginPolicy, proxies: TrustedProxies) -> None:
        self.app = app
        self.policy = policy
        self.proxies = proxies

    def refusal(self, scope: Scope) -> Response | None:
        """The error page for an HTTP request from an origin not allowed, else None."""
        # A loop here, not any() over a generator nor a helper's call: every request asks.
        for key, _ in scope["headers"]:
            if key == b"origin":
                break
        else:
            return None
        headers = Headers(scope=scope)
        if self.allows(scope, headers, headers["origin"]):
            return None
        return error_response(
            OriginNotAllowed(f"origin {headers['origin'][:100]!r} is not allowed"),
            scope,
            accept=headers.get("accept", ""),
        )

    def allows(self, scope: Scope, headers: Headers, value: str) -> bool:
        origin = parse_origin(value)
        if origin is None:
            return False  # `null`, or not an origin at all
        if self.policy.allows(origin):
            return True
        return origin == parse_origin(self.proxies.public_origin(scope, headers))
