"""`create_app`: settings in, ASGI app out.

The one place (with the command line) that reads `Settings`: it turns them into the
keyword arguments of each component, asks the chosen vendor's provider for its token
issuer and page source, and wires the request's path:

    RequestLog → OriginGuard → route → Admission (IP limit, identity, user limit)
        → TokenCache / PageSource (the vendor, through the cache) → the page
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import fields, replace
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route
from starlette.types import ASGIApp

from . import admin
from .cache import Keys, MemoryStore, PageCache, TokenCache, open_store
from .cache.counts import WindowCounters
from .cache.pages import Fetch
from .cache.store import Store
from .cache.tokens import Backoff
from .cache.views import Views
from .fastpath import ProxyApp
from .forgetting import Forgetting, revocations, token_keys
from .health import CacheCensus, MetricsEndpoint, Readiness, healthz
from .ops.logs import add_redaction
from .ops.metrics import Metrics
from .ops.requestlog import Answerer, LineSink, RequestLog, through_logging
from .options import canonical
from .providers import PROVIDERS, JwtLifetime, Parts, Provider
from .responses import crash_page, http_error_page
from .routes import TokenEndpoint, WidgetPage
from .security.admission import Admission, visitors
from .security.forwarded import TrustedProxies
from .security.guard import OriginGuard
from .security.headers import HeaderLimit
from .security.identity import (
    ANONYMOUS,
    Derive,
    HeaderIdentity,
    IdentitySource,
    SessionReader,
)
from .security.origins import OriginPolicy
from .security.ratelimit import RateLimits
from .settings import Settings
from .sharing import Shared
from .upstream.breaker import BreakerPolicy
from .upstream.client import HttpClient, Limits, Retries, Timeouts

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

log = logging.getLogger("widget_proxy")


def create_app(
    settings: Settings | None = None,
    *,
    transport: httpx2.AsyncBaseTransport | None = None,
    metrics: Metrics | None = None,
    clock: Callable[[], float] = time.time,
    request_log: LineSink = through_logging,
    tracer: Tracer | None = None,
    shared_dir: str | None = None,
    shared: Shared | None = None,
) -> Starlette:
    """The proxy as an ASGI app; settings come from the environment when not given.

    `transport` replaces the network under the upstream client (unit tests only);
    `metrics` carries the counters over from an earlier app (a settings reload);
    `clock` is the wall clock the caches and rate limits read (tests move it by hand
    instead of sleeping past an expiry); `request_log` is where each request's line
    goes: a record of the `widget_proxy.request` logger unless `serve` (which owns
    the process's logging) hands in its `FastLines` (docs/logging.md); `tracer`: trace
    every request with it (`serve` gives its process's when `OTEL_*` asks for traces:
    docs/tracing.md), its spans made by the traced parts built instead of the plain
    ones, at no cost when None; `shared_dir`: a folder every worker of `serve` shares,
    where they learn of forgets with `memory://` (docs/revocation.md); `shared`: what
    it shares with the other widgets of its process (`sharing`; `serve --config`: its
    upstream client is the process's).
    """
    settings = settings if settings is not None else Settings.load()
    add_redaction(settings.secrets)  # whoever configured the proxy's logging, before or after
    metrics = metrics if metrics is not None else Metrics()
    if shared is None:
        http = http_client(settings, metrics=metrics, transport=transport, tracer=tracer)
        store = open_store(
            settings.cache_url,
            secret=settings.session_secret.reveal(),
            max_entries=settings.cache_max_entries,
            metrics=metrics,
            clock=clock,
        )
    else:
        http, store = shared.http(settings, metrics), shared.store(settings, metrics, clock)
    keys = Keys(settings.session_secret.reveal(), scope=shared.scope if shared else "")
    lease = settings.upstream_deadline + 1  # a fill's lock outlives one upstream call
    provider: Provider[Any] = PROVIDERS[settings.token_provider]
    namespace = vendor_namespace(settings, keys)
    parts = _parts(settings, http, store, keys, metrics, lease, namespace, clock, tracer)
    vendor = provider.build(settings.vendor, parts)
    issuer, pages = vendor.tokens, vendor.pages
    token_cache: Callable[..., TokenCache[Any]] = TokenCache
    if tracer is not None:
        from .cache.traced import TracedIssuer, TracedPages, TracedTokenCache

        issuer = TracedIssuer(issuer, tracer=tracer, vendor=settings.token_provider)
        pages = TracedPages(pages, tracer=tracer)
        token_cache = partial(TracedTokenCache, tracer=tracer)
    tokens = token_cache(
        store,
        issuer,
        namespace=namespace,
        margin=settings.token_refresh_margin,
        lease=lease,
        # "shared": the token names no user, so every visitor's key is the same one
        # (tests/providers/test_base.py holds each provider to what it says).
        shared=provider.anonymous == "shared",
        backoff=Backoff(limit=settings.breaker_cooldown),
        metrics=metrics,
        clock=clock,
    )
    proxies = TrustedProxies(settings.trusted_proxies)
    policy = OriginPolicy(settings.allowed_origins)
    counters = WindowCounters(
        shared=None if isinstance(store, MemoryStore) else store,
        sync_interval=settings.rate_limit_sync_interval,
        max_keys=settings.cache_max_entries,
        clock=clock,
    )
    limits = RateLimits(
        counters,
        keys=keys,
        per_user=settings.rate_limit_per_minute,
        per_ip=settings.rate_limit_ip_per_minute,
        metrics=metrics,
    )
    forgets = revocations(
        store,
        keys,
        interval=settings.rate_limit_sync_interval,
        keep=2 * settings.token_max_ttl + 60,  # longer than a token forgotten lives
        shared_dir=shared_dir,
        clock=clock,
    )
    shared_token = provider.anonymous == "shared"
    # Each session's keys, made once (identity.Visitor), with the user's version.
    derive = visitors(limits, token_keys(forgets, tokens.key, shared=shared_token))
    identities = _identities(settings, proxies, derive)
    admitting: Callable[..., Admission] = Admission
    if tracer is not None:
        from .security.traced import Pseudonyms, TracedAdmission

        pseudonyms = Pseudonyms(keys.hasher(b"widget-proxy trace pseudonym"))
        admitting = partial(TracedAdmission, tracer=tracer, pseudonyms=pseudonyms)
    admission = admitting(
        identities,
        proxies,
        limits,
        anonymous=derive(ANONYMOUS) if settings.allow_anonymous else None,
    )
    tokenless = provider.anonymous == "tokenless"
    page = WidgetPage(
        admission=admission,
        tokens=tokens,
        pages=pages,
        default_color=settings.widget_color,
        login_url=settings.login_url,
        frame_ancestors=settings.frame_ancestors,
        sandbox=settings.widget_sandbox,
        tokenless_anonymous=tokenless,
        views=Views if tracer is None else _traced_views(tracer),
    )
    Forgetting(
        forgets,
        identities=identities,
        views=page.views,
        store=store,
        admission=admission,
        derive=derive,
        shared_token=shared_token,
    )
    widget, *more = pages.paths
    census = CacheCensus(store, metrics)  # the cache's nodes, counted off the page path
    routes = [
        Route(widget, page, methods=["GET"]),
        Route(
            "/widget/token",
            TokenEndpoint(
                admission=admission,
                tokens=tokens,
                policy=policy,
                tokenless_anonymous=tokenless,
                clock=clock,
            ),
            methods=["POST", "OPTIONS"],
        ),
        *(Route(path, page, methods=["GET"]) for path in more),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", Readiness(store, http, census, tokens).respond, methods=["GET"]),
        Route(
            admin.PATH,
            admin.ForgetEndpoint(
                forgets,
                key=admin.admin_key(settings.session_secret.reveal()),
                allow=settings.admin_allow,
                clock=clock,
            ).respond,
            methods=["POST"],
        ),
    ]
    if settings.metrics_enabled:
        endpoint = MetricsEndpoint(metrics, settings.metrics_allow, census)
        routes.append(Route("/metrics", endpoint.respond, methods=["GET"]))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await forgets.start()  # what was forgotten before this process started
        yield
        await forgets.aclose()
        await counters.aclose()  # its last sync, before the store goes
        if shared is None:  # else their maker closes them
            await http.aclose()
            await store.aclose()

    def front(app: ASGIApp, answers: Mapping[str, Answerer]) -> ASGIApp:
        logged = RequestLog(app, metrics, proxies, limits, request_log, answers)
        if tracer is None:
            return logged
        from .ops.spans import ServerSpans

        return ServerSpans(logged, tracer=tracer)  # the request line is written inside

    app = ProxyApp(
        routes=routes,
        log=front,
        gates=[
            lambda app: HeaderLimit(
                app,
                max_bytes=settings.max_header_bytes,
                max_target_bytes=settings.max_request_target_bytes,
            ),
            lambda app: OriginGuard(app, policy=policy, proxies=proxies),
        ],
        # The widget page's fixed path skips the router (the same gates, the same crash
        # page): a warm view is mostly what wraps it otherwise.
        short=[(routes[0], page.answer)] if "{" not in widget else [],
        crash=crash_page,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error_page, Exception: crash_page},
    )
    # `/widget/` would be answered with a redirect built from the request's Host.
    app.router.redirect_slashes = False
    app.state.metrics = metrics  # for an app that mounts this one and logs in front of it
    app.state.revocations = forgets  # `forgetting.forget(app, email)`
    return app


def vendor_namespace(settings: Settings, keys: Keys) -> str:
    """Where every cached token and page is filed: an HMAC of the vendor's configuration.

    A new key, secret or address is a new namespace, so nothing made with the old one is
    served. A rotation's next key (`*_next`) is left out: announcing it changes nothing
    already issued, so it must not make every visitor's token be issued again.
    """
    group: Any = settings.vendor  # a settings dataclass (the protocol doesn't say so)
    announced = {f.name: None for f in fields(group) if f.name.endswith("_next")}
    hasher = keys.hasher(b"widget-proxy vendor namespace")
    return hasher(canonical(settings.token_provider, replace(group, **announced)))[:12]


def http_client(
    settings: Settings,
    *,
    metrics: Metrics | None = None,
    transport: httpx2.AsyncBaseTransport | None = None,
    tracer: Tracer | None = None,
) -> HttpClient:
    """The one upstream client, as the settings describe it (`check` uses it too)."""
    client: Callable[..., HttpClient] = HttpClient
    if tracer is not None:
        from .upstream.traced import TracedHttpClient

        client = partial(TracedHttpClient, tracer=tracer)
    return client(
        timeouts=Timeouts(
            connect=settings.upstream_connect_timeout,
            read=settings.upstream_read_timeout,
            pool=settings.upstream_pool_timeout,
        ),
        limits=Limits(
            max_connections=settings.upstream_max_connections,
            max_bytes=settings.upstream_max_bytes,
        ),
        retries=Retries(retries=settings.upstream_retries, deadline=settings.upstream_deadline),
        breaker=BreakerPolicy(
            failures=settings.breaker_failures, cooldown=settings.breaker_cooldown
        ),
        metrics=metrics,
        transport=transport,
        vendor=settings.token_provider,
    )


def _parts(
    settings: Settings,
    http: HttpClient,
    store: Store,
    keys: Keys,
    metrics: Metrics,
    lease: float,
    namespace: str,
    clock: Callable[[], float],
    tracer: Tracer | None,
) -> Parts:
    cache: Callable[..., PageCache] = PageCache
    if tracer is not None:
        from .cache.traced import TracedPageCache

        cache = partial(TracedPageCache, tracer=tracer)

    def page_cache(origin: str, fetch: Fetch) -> PageCache:
        return cache(
            store,
            fetch,
            scope=f"{namespace} {origin}",
            ttl=settings.page_cache_ttl,
            stale_if_error=settings.page_stale_if_error,
            lease=lease,
            metrics=metrics,
            clock=clock,
        )

    lifetime = JwtLifetime(
        margin=settings.token_refresh_margin,
        max_ttl=settings.token_max_ttl,
        default_ttl=settings.token_default_ttl,
    )
    return Parts(
        http, keys, lifetime, page_cache, metrics=metrics, template=settings.widget_template
    )


def _traced_views(tracer: Tracer) -> Callable[[Sequence[tuple[bytes, bytes]]], Views]:
    from .cache.traced import TracedViews

    return partial(TracedViews, tracer=tracer)


def _identities(settings: Settings, proxies: TrustedProxies, derive: Derive) -> IdentitySource:
    if settings.identity_source == "header":
        identity_proxies = TrustedProxies(settings.identity_proxies)
        return HeaderIdentity(
            proxies=identity_proxies, header=settings.identity_header, derive=derive
        )
    return SessionReader(
        secret=settings.session_secret.reveal(),
        cookie=settings.session_cookie,
        max_age=settings.session_max_age,
        email_key=settings.session_email_key,
        user_id_key=settings.session_user_id_key,
        metadata_keys=settings.session_metadata_keys,
        derive=derive,
    )
