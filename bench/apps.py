"""The two apps the proxy is measured against, served by the same command line as the
proxy (uvicorn's, or granian's with `--server granian`).

- `limit_app`: the ceiling. One pure-ASGI route that sends the bytes and headers the
  proxy sent for one user, computed once: no session, cache, rate limit or injection.
  Whatever the proxy costs beyond this is the proxy's own work.
- `naive_app`: the vendor's documented recipe, as a merchant would first write it:
  read the session, sign in, fetch the page, replace the empty token; every request,
  no cache, one shared httpx2 client.

Both are configured by environment variables (below), as the proxy is.
"""

from __future__ import annotations

import json
import os
from base64 import b64decode
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import httpx2
import itsdangerous
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

LIMIT_BODY: Final = "BENCH_LIMIT_BODY"  # a file holding the proxy's body for one user
LIMIT_HEADERS: Final = "BENCH_LIMIT_HEADERS"  # a JSON file: the proxy's headers, as pairs

NAIVE_BASE_URL: Final = "BENCH_NAIVE_BASE_URL"
NAIVE_API_KEY: Final = "BENCH_NAIVE_API_KEY"
NAIVE_COMMUNITY: Final = "BENCH_NAIVE_COMMUNITY"
NAIVE_WIDGET: Final = "BENCH_NAIVE_WIDGET"  # type/id, e.g. store/bench-store
NAIVE_SESSION_SECRET: Final = "BENCH_NAIVE_SESSION_SECRET"  # noqa: S105 (a variable name)

# Two weeks, Starlette's SessionMiddleware default, as the proxy accepts.
SESSION_MAX_AGE: Final = 14 * 24 * 3600


class StaticPage:
    """A pure ASGI endpoint, the same shape as the proxy's page route."""

    def __init__(self, body: bytes, headers: list[tuple[str, str]]) -> None:
        pairs = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        pairs.append((b"content-length", str(len(body)).encode()))
        self._start: Message = {"type": "http.response.start", "status": 200, "headers": pairs}
        self._body: Message = {"type": "http.response.body", "body": body}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(self._start)
        await send(self._body)


def limit_app() -> Starlette:
    body = Path(os.environ[LIMIT_BODY]).read_bytes()
    headers = [(str(k), str(v)) for k, v in json.loads(Path(os.environ[LIMIT_HEADERS]).read_text())]
    return Starlette(routes=[Route("/widget", StaticPage(body, headers), methods=["GET"])])


def naive_app() -> Starlette:
    base = os.environ[NAIVE_BASE_URL].rstrip("/")
    api_key = os.environ[NAIVE_API_KEY]
    signin_url = f"{base}/widget/{os.environ[NAIVE_COMMUNITY]}/signin"
    page_url = f"{base}/{os.environ[NAIVE_WIDGET]}"
    signer = itsdangerous.TimestampSigner(os.environ[NAIVE_SESSION_SECRET])
    client = httpx2.AsyncClient(timeout=10.0)

    def email_of(request: Request) -> str | None:
        raw = request.cookies.get("session")
        if not raw:
            return None
        try:
            data = json.loads(b64decode(signer.unsign(raw, max_age=SESSION_MAX_AGE)))
        except (itsdangerous.BadSignature, ValueError):
            return None
        value = data.get("email") if isinstance(data, dict) else None
        return value if isinstance(value, str) else None

    async def widget(request: Request) -> Response:
        email = email_of(request)
        if email is None:
            return PlainTextResponse("sign in first", status_code=401)
        headers = {
            "returningai-api-key": api_key,
            "email": email,
            "content-type": "application/json",
        }
        try:
            signin = await client.post(signin_url, headers=headers)
            signin.raise_for_status()
            token = signin.json()["token"]
            page = await client.get(page_url, params={"color": "light"})
            page.raise_for_status()
        except (httpx2.HTTPError, ValueError, KeyError):
            return PlainTextResponse("upstream failed", status_code=502)
        html = page.text.replace('token: ""', f"token: {json.dumps(token)}", 1)
        return HTMLResponse(html, headers={"cache-control": "no-store"})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    return Starlette(routes=[Route("/widget", widget, methods=["GET"])], lifespan=lifespan)
