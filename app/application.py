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

from app.access import RequestLog
from app.admission import Admission
from app.cache import PageCache, TokenCache, open_store
from app.delivery import loader_pages
from app.guard import OriginGuard
from app.health import MetricsEndpoint, Readiness, healthz
from app.http import HttpClient
from app.identity import identity_source
from app.metrics import Metrics
from app.origins import OriginPolicy
from app.pages import error_page, report_error
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
    metrics = Metrics()
    http = HttpClient(settings, transport=transport, metrics=metrics)
    store = open_store(settings)
    upstream = Upstream(settings, http)  # Returning.AI's signin and pages; idle otherwise
    tokens = TokenCache(settings, store, make_provider(settings, http, upstream), metrics=metrics)
    proxies = TrustedProxies(settings.trusted_proxies)
    policy = OriginPolicy(settings.allowed_origins)
    limits = RateLimits(settings, store, metrics)
    admission = Admission(identity_source(settings, proxies), proxies, limits)
    token_route = Route(
        "/widget/token",
        TokenEndpoint(settings, admission, tokens, policy),
        methods=["POST", "OPTIONS"],
    )
    if settings.token_provider == "returningai":  # noqa: S105
        # The vendor's own page, rewritten; several widgets by type and id.
        pages = PageCache(settings, store, upstream.page, metrics=metrics)
        page = WidgetPage(settings, admission, tokens, pages)
        routes = [
            Route("/widget", page, methods=["GET"]),
            token_route,
            Route("/widget/{type}/{id}", page, methods=["GET"]),
        ]
    else:
        # No vendor page: a loader page rendered here carries the token.
        page = WidgetPage(settings, admission, tokens, loader_pages(settings))
        routes = [Route("/widget", page, methods=["GET"]), token_route]
    routes += [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", Readiness(store, http).respond, methods=["GET"]),
    ]
    if settings.metrics_enabled:
        endpoint = MetricsEndpoint(metrics, settings.metrics_allow)
        routes.append(Route("/metrics", endpoint.respond, methods=["GET"]))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await http.aclose()
        await store.aclose()

    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestLog, metrics=metrics, proxies=proxies),
            Middleware(OriginGuard, policy=policy, proxies=proxies),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _crash},
    )
    app.state.metrics = metrics  # for an app that mounts this one and logs in front of it
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    request_id = report_error(request.scope, exc.status_code, code, exc.detail)
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
    request_id = report_error(request.scope, 500, "internal_error", type(exc).__name__)
    log.error("unexpected error (request_id=%s)", request_id, exc_info=exc)
    return error_page(
        500,
        "internal_error",
        "Something went wrong on our side.",
        accept=request.headers.get("accept", ""),
        request_id=request_id,
    )
