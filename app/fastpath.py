"""The widget page's short path: the same layers, without the framework around them.

A warm page view is a few dictionary lookups and a join; what Starlette wraps around
an endpoint (its error middleware, its exception middleware, the router trying each
route's pattern) costs a noticeable part of that. `ProxyApp` is the Starlette app
`create_app` returns, unchanged for everything else (lifespan, mounting, `state`,
every other route), but a GET of one of the widget page's fixed paths goes straight
through the app's own middleware (request log, header limit, origin guard) to the
endpoint, with an unexpected error answered by the app's own crash page, as the
router's path would.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Crash = Callable[[Request, Exception], Awaitable[Response]]


class ProxyApp(Starlette):
    def __init__(self, *args: Any, fast: Sequence[Route] = (), crash: Crash, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._fast = fast
        self._crash = crash

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        if not self._fast:
            return stack
        shortcuts: dict[str, tuple[Route, ASGIApp]] = {}
        for route in self._fast:
            endpoint: ASGIApp = Answered(route.app, self._crash)
            for middleware in reversed(self.user_middleware):
                factory, args, kwargs = middleware  # Starlette's own (cls, args, kwargs)
                endpoint = factory(endpoint, *args, **kwargs)
            shortcuts[route.path] = (route, endpoint)
        return Shortcut(stack, shortcuts)


class Shortcut:
    """GETs of the fixed paths in `shortcuts` go to their own chain; the rest to `app`."""

    def __init__(self, app: ASGIApp, shortcuts: Mapping[str, tuple[Route, ASGIApp]]) -> None:
        self.app = app
        self.shortcuts = shortcuts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            if root and path.startswith(root):  # mounted: matched as the router would
                path = path[len(root) :]
            found = self.shortcuts.get(path)
            if found is not None:
                scope["route"], scope["path_params"] = found[0], {}
                await found[1](scope, receive, send)
                return
        await self.app(scope, receive, send)


class Answered:
    """An unexpected error becomes the app's crash page, if nothing was sent yet."""

    def __init__(self, app: ASGIApp, crash: Crash) -> None:
        self.app = app
        self.crash = crash

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            if started:
                raise
            response = await self.crash(Request(scope, receive), exc)
            await response(scope, receive, send)
