"""The stand-in vendor as its own process: the Returning.AI stand-in plus controls.

The benchmark reads the call counts and changes the latency and token lifetime over
HTTP, under `/__`, so one stand-in process serves every scenario:

- `GET /__calls`: the counts, as JSON;
- `POST /__config?signin_delay=…&page_delay=…&token_ttl=…`: change any of them.

Served by `python -m uvicorn bench.upstream:create_app --factory`, configured by the
environment variables below.
"""

from __future__ import annotations

import os
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from widget_proxy.providers.returningai import ReturningAIStandIn

API_KEY: Final = "BENCH_UPSTREAM_API_KEY"
COMMUNITY: Final = "BENCH_UPSTREAM_COMMUNITY"
SIGNING_KEY: Final = "BENCH_UPSTREAM_SIGNING_KEY"


def create_app() -> ASGIApp:
    vendor = ReturningAIStandIn(
        api_key=os.environ[API_KEY],
        community_id=os.environ[COMMUNITY],
        signing_key=os.environ[SIGNING_KEY],
    )
    return Controlled(vendor)


class Controlled:
    def __init__(self, vendor: ReturningAIStandIn) -> None:
        self._vendor = vendor
        self._app = vendor.app()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/__"):
            response = self._control(Request(scope, receive))
            await response(scope, receive, send)
            return
        await self._app(scope, receive, send)

    def _control(self, request: Request) -> Response:
        vendor = self._vendor
        if request.url.path == "/__calls" and request.method == "GET":
            return JSONResponse(dict(vendor.calls))
        if request.url.path == "/__config" and request.method == "POST":
            query = request.query_params
            try:
                vendor.signin_delay = float(query.get("signin_delay", vendor.signin_delay))
                vendor.page_delay = float(query.get("page_delay", vendor.page_delay))
                vendor.token_ttl = int(query.get("token_ttl", vendor.token_ttl))
            except ValueError:
                return JSONResponse({"error": "numbers only"}, status_code=400)
            settings = {
                "signin_delay": vendor.signin_delay,
                "page_delay": vendor.page_delay,
                "token_ttl": vendor.token_ttl,
            }
            return JSONResponse(settings)
        return JSONResponse({"error": "unknown control"}, status_code=404)
