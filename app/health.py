"""What an operator asks the process: is it alive, is it ready, what has it done."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from .cache import Store, TieredStore, TokenCache
from .ops.metrics import CONTENT_TYPE, Metrics
from .security.forwarded import Network, TrustedProxies
from .upstream.client import HttpClient

log = logging.getLogger("widget_proxy.cache")

CENSUS_EVERY: Final = 5.0  # seconds between two counts of the cache's nodes
CENSUS_TIMEOUT: Final = 2.0  # a count that takes longer keeps the last one
ROLES: Final = ("master", "replica")


class CacheCensus:
    """`widget_proxy_cache_nodes{topology,role}`: Redis's data nodes, counted off the
    page path, by /readyz and before a /metrics scrape, at most every `every` seconds.

    A memory store has no cache server: no series. A count that fails or times out
    (the sentinels don't answer) leaves the last one; a Sentinel with no master up
    counts 0 masters (see `topology.census`).
    """

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        *,
        every: float = CENSUS_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._gauge = metrics.cache_nodes
        self._every = every
        self._clock = clock
        self._next = 0.0

    async def refresh(self) -> None:
        if not isinstance(self._store, TieredStore) or self._clock() < self._next:
            return
        self._next = self._clock() + self._every  # concurrent asks count once
        try:
            nodes = await asyncio.wait_for(self._store.nodes(), CENSUS_TIMEOUT)
        except Exception:  # a count must never fail the readiness answer or the scrape
            log.debug("counting the cache's nodes failed", exc_info=True)
            return
        if nodes is None:
            return
        topology = str(self._store.topology()["topology"])
        for role in ROLES:
            self._gauge.labels(topology, role).set(nodes.get(role, 0))


async def healthz(request: Request) -> Response:
    """Liveness: the process answers."""
    return PlainTextResponse("ok", headers={"cache-control": "no-store"})


class Readiness:
    """Whether this process can serve: it can, once started, so readiness is 200.

    What is degraded is said in the body (and in the metrics), not as a 503: an open
    circuit to the vendor or an unreachable Redis is the same for every instance, and
    an orchestrator that pulled them all would turn a partial outage into a total one.
    Cached pages and tokens still flow, and the circuit probes the vendor by itself.
    """

    def __init__(
        self,
        store: Store,
        http: HttpClient,
        census: CacheCensus | None = None,
        tokens: TokenCache[Any] | None = None,
    ) -> None:
        self._store = store
        self._http = http
        self._census = census
        self._tokens = tokens

    async def respond(self, request: Request) -> Response:
        if self._census is not None:
            await self._census.refresh()
        degraded = {}
        try:
            await self._store.ping()
        except Exception as exc:
            degraded["cache"] = f"the shared cache does not answer ({type(exc).__name__})"
        else:
            if (why := self._store.degraded()) is not None:
                degraded["cache"] = why
        for origin, breaker in self._http.breakers.items():
            if breaker.state != "closed":
                degraded[f"upstream {origin}"] = f"circuit {breaker.state}: the vendor failed"
        if self._tokens is not None and (why := self._tokens.degraded()) is not None:
            degraded["token"] = why
        body = {"ready": True, "degraded": degraded, "cache": self._store.topology()}
        return JSONResponse(body, headers={"cache-control": "no-store"})


class MetricsEndpoint:
    """Prometheus text, for scrapers inside METRICS_ALLOW only."""

    def __init__(
        self, metrics: Metrics, allow: tuple[Network, ...], census: CacheCensus | None = None
    ) -> None:
        self._metrics = metrics
        self._allowed = TrustedProxies(allow)
        self._census = census

    async def respond(self, request: Request) -> Response:
        if not self._allowed.trusts(self._allowed.peer(request.scope)):
            return PlainTextResponse("forbidden", status_code=403)
        if self._census is not None:
            await self._census.refresh()
        return Response(self._metrics.exposition(), media_type=CONTENT_TYPE)
