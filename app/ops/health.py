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
    """200 when the cache store answers and no circuit is open; else 503 naming why.

    (Settings are valid, or the process would not have started.)
    """

    def __init__(self, store: Store, http: HttpClient) -> None:
        self._store = store
        self._http = http

    async def respond(self, request: Request) -> Response:
        problems = {}
        try:
            await self._store.ping()
        except Exception as exc:
            problems["cache"] = f"the cache store does not answer ({type(exc).__name__})"
        for origin, breaker in self._http.breakers.items():
            if breaker.state == "open":
                problems[f"upstream {origin}"] = "circuit open: the vendor keeps failing"
        body = {"ready": not problems, "problems": problems}
        return JSONResponse(
            body, status_code=503 if problems else 200, headers={"cache-control": "no-store"}
        )


class MetricsEndpoint:
    """Prometheus text, for scrapers inside METRICS_ALLOW only."""

    def __init__(self, metrics: Metrics, allow: tuple[Network, ...]) -> None:
        self._metrics = metrics
        self._allowed = TrustedProxies(allow)

    async def respond(self, request: Request) -> Response:
        if not self._allowed.trusts(self._allowed.peer(request.scope)):
            return PlainTextResponse("forbidden", status_code=403)
        return Response(self._metrics.exposition(), media_type=CONTENT_TYPE)
