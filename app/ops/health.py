"""What an operator asks the process: is it alive, is it ready, what has it done."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..cache import Store
from ..security.forwarded import Network, TrustedProxies
from ..upstream.client import HttpClient
from .metrics import CONTENT_TYPE, Metrics


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

    def __init__(self, store: Store, http: HttpClient) -> None:
        self._store = store
        self._http = http

    async def respond(self, request: Request) -> Response:
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
        body = {"ready": True, "degraded": degraded, "cache": self._store.topology()}
        return JSONResponse(body, headers={"cache-control": "no-store"})


class MetricsEndpoint:
    """Prometheus text, for scrapers inside METRICS_ALLOW only."""

    def __init__(self, metrics: Metrics, allow: tuple[Network, ...]) -> None:
        self._metrics = metrics
        self._allowed = TrustedProxies(allow)

    async def respond(self, request: Request) -> Response:
        if not self._allowed.trusts(self._allowed.peer(request.scope)):
            return PlainTextResponse("forbidden", status_code=403)
        return Response(self._metrics.exposition(), media_type=CONTENT_TYPE)
