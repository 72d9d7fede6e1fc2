"""The widget page: identity → token and page (cached, else upstream) → injected HTML.

A pure ASGI endpoint: on a warm page view the token and the page are two lookups in
this process's memory, and so is the answer they make (`cache/views`: the page
rendered with the user's token and its headers, once per token and page); it builds
no Request or Response object.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from .cache.tokens import TokenCache
from .cache.views import Views
from .delivery.page import DEFAULT_COLOR, Color, Page, PageSource
from .errors import BadRequest, NotAuthenticated, WidgetProxyError
from .ops.requestlog import note_field
from .responses import BASE_HEADERS, Answer, error_response, prefers_json
from .security.admission import Admission
from .security.identity import Identity
from .security.origins import OriginPolicy, parse_origin
from .upstream.breaker import one_caller

A = TypeVar("A")
B = TypeVar("B")


class WidgetPage:
    """`GET /widget` and the other paths of the vendor's page source."""

    def __init__(
        self,
        *,
        admission: Admission,
        tokens: TokenCache[Identity],
        pages: PageSource,
        default_color: Color = DEFAULT_COLOR,
        login_url: str | None = None,
        frame_ancestors: tuple[str, ...] = ("'self'",),
        sandbox: bool = False,
        tokenless_anonymous: bool = False,
        views: Callable[[Sequence[tuple[bytes, bytes]]], Views] = Views,
    ) -> None:
        """`views`: makes the answers' memo (`cache.traced.TracedViews` when tracing)."""
        self._admission = admission
        self._tokens = tokens
        self._pages = pages
        self._tokenless = tokenless_anonymous  # an anonymous visitor's widget has no token
        self._default_color = default_color
        self._login_url = login_url
        csp = "frame-ancestors " + " ".join(frame_ancestors)
        if sandbox:
            # The vendor's scripts run, in an opaque origin: nothing of the merchant's
            # origin (its pages, cookies, storage) is theirs to read.
            csp += "; sandbox allow-scripts allow-forms allow-popups"
        # Each user's answer, rendered once per token and page (cache/views).
        self._views = views(
            [
                (b"content-type", b"text/html; charset=utf-8"),
                *((k.encode(), v.encode()) for k, v in BASE_HEADERS.items()),
                (b"content-security-policy", csp.encode()),
            ]
        )

    @property
    def views(self) -> Views:
        """Each user's answer (a forget drops theirs: `forgetting`)."""
        return self._views

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await (await self.answer(scope, receive))(scope, receive, send)

    async def answer(self, scope: Scope, receive: Receive) -> Answer:
        """What to send: the page, the login redirect or an error page (`fastpath`
        sends it itself, with the request log's header)."""
        try:
            widget = self._pages.select(scope["path_params"])
            query = scope["query_string"]  # (most views have none: no call then)
            color = self._color(query) if query else self._default_color
            visitor = self._admission.visitor(scope)
            if visitor is None:
                if self._login_url is not None and not prefers_json(_accept(scope)):
                    return self._to_login(scope)
                raise NotAuthenticated("no signed-in session")
            if self._tokenless and visitor.identity.anonymous:
                same = self._pages.cached(widget, color) or await self._pages.fetch(widget, color)
                return self._views.answer("", "", same)  # the same for every such visitor
            key = visitor.token_key
            token, page = self._tokens.cached(key), self._pages.cached(widget, color)
            if token is None or page is None:
                note_field(scope, "cache", "miss")
                token, page = await self._fetch(key, visitor.identity, widget, color, token, page)
            else:
                note_field(scope, "cache", "hit")
            return self._views.answer(key, token, page)
        except WidgetProxyError as exc:
            return error_response(exc, scope, accept=_accept(scope))

    async def _fetch(
        self,
        key: str,
        identity: Identity,
        widget: str,
        color: Color,
        token: str | None,
        page: Page | None,
    ) -> tuple[str, Page]:
        """Whatever this process did not hold: from the shared store, else upstream."""
        one_caller(key, shared=self._tokens.shared)
        if token is None:
            if page is None:
                return await _both(
                    self._tokens.fetch(key, identity), self._pages.fetch(widget, color)
                )
            return await self._tokens.fetch(key, identity), page
        if page is None:
            return token, await self._pages.fetch(widget, color)
        return token, page

    def _color(self, query_string: bytes) -> Color:
        if not query_string:
            return self._default_color
        values = [v for k, v in parse_qsl(query_string.decode("latin-1")) if k == "color"]
        if not values:
            return self._default_color
        if len(values) == 1 and values[0] in ("light", "dark"):
            return "light" if values[0] == "light" else "dark"
        raise BadRequest("color must be light or dark")

    def _to_login(self, scope: Scope) -> RedirectResponse:
        assert self._login_url is not None
        target = external_path(scope)
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        sep = "&" if "?" in self._login_url else "?"
        return RedirectResponse(
            f"{self._login_url}{sep}{urlencode({'next': target})}",
            status_code=303,
            headers=BASE_HEADERS,
        )


class TokenEndpoint:
    """`POST /widget/token`: `{"token": …, "expiresIn": s}` for the visitor, for SDKs,
    SPAs and the loader pages that renew their token (`expiresIn`: seconds the proxy
    still serves this token; ask again by then). The shape a widget SDK's `auth-url`
    expects (`{"token": …}`), so it can point there.

    Answers JSON only. Cross-origin callers must be in `ALLOWED_ORIGINS` (the guard
    refuses the others); they get CORS headers with credentials, never `*`. Only
    POST: a token can't be pulled by an `<img>` or a link.
    """

    def __init__(
        self,
        *,
        admission: Admission,
        tokens: TokenCache[Identity],
        policy: OriginPolicy,
        tokenless_anonymous: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._admission = admission
        self._tokens = tokens
        self._policy = policy
        self._tokenless = tokenless_anonymous
        self._clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        cors = self._cors(headers)
        if scope["method"] == "OPTIONS":
            preflight = {
                **cors,
                "access-control-allow-methods": "POST",
                "access-control-allow-headers": "content-type, x-requested-with",
                "access-control-max-age": "600",
            }
            await Response(status_code=204, headers=preflight)(scope, receive, send)
            return
        try:
            visitor = self._admission.visitor(scope)
            if visitor is None:
                raise NotAuthenticated("no signed-in session")
            body: dict[str, object] = {"token": None}  # anonymous: the widget runs without
            if not (visitor.identity.anonymous and self._tokenless):
                key = visitor.token_key
                one_caller(key, shared=self._tokens.shared)
                entry = await self._tokens.entry(key, visitor.identity)
                # When to come back: the proxy serves this token until then, not after.
                expires_in = max(0, int(entry.expires_at - self._clock()))
                body = {"token": entry.token, "expiresIn": expires_in}
        except WidgetProxyError as exc:
            response = error_response(exc, scope, accept="application/json")
            response.headers.update(cors)
            await response(scope, receive, send)
            return
        await JSONResponse(body, headers={**BASE_HEADERS, **cors})(scope, receive, send)

    def _cors(self, headers: Headers) -> dict[str, str]:
        """CORS headers for an allowed cross-origin caller; none for anyone else."""
        origin = headers.get("origin")
        if origin is None or not self._policy.allows(parse_origin(origin)):
            return {"vary": "Origin, Cookie"}
        return {
            "access-control-allow-origin": origin,
            "access-control-allow-credentials": "true",
            "vary": "Origin, Cookie",
        }


def _accept(scope: Scope) -> str:
    """The first `Accept` header, as Starlette's `Headers.get` reads it (a warm view
    builds no `Headers`: only a refusal or the login redirect reads it)."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for key, value in headers:
        if key == b"accept":
            return value.decode("latin-1")
    return ""


def external_path(scope: Scope) -> str:
    """The path as the browser sees it, mount point (root_path) included."""
    root = scope.get("root_path", "")
    path: str = scope["path"]
    return path if path.startswith(root) else root + path


async def _both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Await two calls side by side; the first failure cancels the other and is raised."""
    try:
        async with asyncio.TaskGroup() as group:
            a = group.create_task(_run(first))
            b = group.create_task(_run(second))
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return a.result(), b.result()


async def _run(awaitable: Awaitable[A]) -> A:
    return await awaitable
