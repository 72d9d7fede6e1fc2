"""`create_app`: settings in, ASGI app out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.admission import Admission
from app.cache import PageCache, TokenCache, open_store
from app.delivery import loader_pages
from app.guard import OriginGuard
from app.http import HttpClient
from app.identity import identity_source
from app.origins import OriginPolicy
from app.pages import error_page, log_failure, new_request_id
from app.providers import make_provider
from app.proxies import TrustedProxies
from app.ratelimit import RateLimits
from app.routes import TokenEndpoint, WidgetPage
from app.settings import Settings
from app.upstream import Upstream

log = logging.getLogger("widget_proxy")


def create_app(
    settings: Settings | None = None, *, transport: httpx2.AsyncBaseTransport | None = None
) -> Starlette:
    """The proxy as an ASGI app; settings come from the environment when not given.

    `transport` replaces the network under the upstream client (unit tests only).
    """
    settings = settings if settings is not None else Settings.load()
    http = HttpClient(settings, transport=transport)
    store = open_store(settings)
    tokens = TokenCache(settings, store, make_provider(settings, http))
    proxies = TrustedProxies(settings.trusted_proxies)
    policy = OriginPolicy(settings.allowed_origins)
    admission = Admission(identity_source(settings, proxies), proxies, RateLimits(settings, store))
    token_route = Route(
        "/widget/token",
        TokenEndpoint(settings, admission, tokens, policy),
        methods=["POST", "OPTIONS"],
    )
    if settings.token_provider == "returningai":  # noqa: S105
        # The vendor's own page, rewritten; several widgets by type and id.
        page = WidgetPage(
            settings, admission, tokens, PageCache(settings, store, Upstream(settings, http).page)
        )
        routes = [
            Route("/widget", page, methods=["GET"]),
            token_route,
            Route("/widget/{type}/{id}", page, methods=["GET"]),
        ]
    else:
        # No vendor page: a loader page rendered here carries the token.
        page = WidgetPage(settings, admission, tokens, loader_pages(settings))
        routes = [Route("/widget", page, methods=["GET"]), token_route]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await http.aclose()
        await store.aclose()

    return Starlette(
        routes=routes,
        middleware=[Middleware(OriginGuard, policy=policy, proxies=proxies)],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _crash},
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    request_id = new_request_id()
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    log_failure(exc.status_code, code, exc.detail, request_id=request_id, path=request.url.path)
    response = error_page(
        exc.status_code,
        code,
        exc.detail,
        accept=request.headers.get("accept", ""),
        request_id=request_id,
    )
    response.headers.update(exc.headers or {})
    return response


async def _crash(request: Request, exc: Exception) -> Response:
    request_id = new_request_id()
    log.error("unexpected error (request_id=%s)", request_id, exc_info=exc)
    return error_page(
        500,
        "internal_error",
        "Something went wrong on our side.",
        accept=request.headers.get("accept", ""),
        request_id=request_id,
    )
