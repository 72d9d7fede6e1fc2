"""How an error is answered: an HTML page or JSON naming the problem, with the request id."""

from __future__ import annotations

import logging
from typing import Final, Protocol

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import WidgetProxyError
from .ops.logs import cut
from .ops.requestlog import note, request_id
from .rendering import render

log = logging.getLogger("widget_proxy")

# Every answer of the proxy is per user and must not be stored or sniffed.
BASE_HEADERS: Final = {
    "cache-control": "no-store",
    "vary": "Cookie",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


class Answer(Protocol):
    """A response ready to send: a Starlette `Response`, or a `Prepared` one."""

    status_code: int
    raw_headers: list[tuple[bytes, bytes]]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


class Refusing:
    """A pure ASGI middleware that answers what `refusal` refuses with its error page,
    and passes every other request on: one way in, one way out."""

    app: ASGIApp

    def refusal(self, scope: Scope) -> Response | None:
        """The answer to an HTTP request this middleware refuses, else None."""
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused = self.refusal(scope) if scope["type"] == "http" else None
        if refused is not None:
            await refused(scope, receive, send)
            return
        await self.app(scope, receive, send)


class Prepared:
    """A status, raw headers and body, sent as they are: the warm page view's answer,
    without what building a Starlette `Response` costs."""

    __slots__ = ("body", "raw_headers", "status_code")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status_code = status
        self.raw_headers = headers
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send({"type": "http.response.body", "body": self.body})


def prefers_json(accept: str) -> bool:
    """True when the Accept header ranks application/json above text/html."""
    best = {"json": -1.0, "html": -1.0}
    for item in accept.split(","):
        media, _, params = item.strip().partition(";")
        media = media.strip().lower()
        kind = {"application/json": "json", "text/html": "html"}.get(media)
        if kind is None:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        best[kind] = max(best[kind], q)
    return best["json"] > 0 and best["json"] > best["html"]


def error_response(exc: WidgetProxyError, scope: Scope, *, accept: str) -> Response:
    """The browser's answer to `exc`; its detail goes into the request's one log line."""
    rid = report_error(scope, exc.status, exc.code, exc.detail)
    return error_page(
        exc.status,
        exc.code,
        exc.message,
        accept=accept,
        request_id=rid,
        retry_after=exc.retry_after,
    )


def report_error(scope: Scope, status: int, code: str, detail: str) -> str:
    """Hand the error to the request's log line (or log it here, outside RequestLog)."""
    rid = request_id(scope)
    state = scope.get("state")
    if isinstance(state, dict) and "request_id" in state:
        note(scope, error=f"{code}: {detail}")
    else:
        log.log(
            logging.WARNING if status >= 500 else logging.INFO,
            "request failed: %s %s: %s (status=%d request_id=%s)",
            code, cut(scope.get("path", "?")), cut(detail), status, rid,
        )  # fmt: skip
    return rid


def error_page(
    status: int,
    code: str,
    message: str,
    *,
    accept: str,
    request_id: str,
    retry_after: str | None = None,
) -> Response:
    headers = {**BASE_HEADERS, "x-request-id": request_id}
    if retry_after is not None:
        headers["retry-after"] = retry_after
    if prefers_json(accept):
        body = {"error": code, "message": message, "request_id": request_id}
        return JSONResponse(body, status_code=status, headers=headers)
    html = render("error.html", status=status, message=message, request_id=request_id)
    return HTMLResponse(html, status_code=status, headers=headers)


async def http_error_page(request: Request, exc: Exception) -> Response:
    """Starlette's HTTPException (a 404, a 405) as the proxy's own error page."""
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


async def crash_page(request: Request, exc: Exception) -> Response:
    """An unexpected error: the crash page, its trace logged under the request id."""
    request_id = report_error(request.scope, 500, "internal_error", type(exc).__name__)
    log.error("unexpected error (request_id=%s)", request_id, exc_info=exc)
    return error_page(
        500,
        "internal_error",
        "Something went wrong on our side.",
        accept=request.headers.get("accept", ""),
        request_id=request_id,
    )
