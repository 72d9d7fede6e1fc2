"""The widget page's short path: the same layers, without the framework around them.

A warm page view is a few dictionary lookups and a join; what Starlette wraps around
an endpoint (its error middleware, its exception middleware, the router trying each
route's pattern) costs a noticeable part of that. `ProxyApp` is the Starlette app
`create_app` returns, unchanged for everything else (lifespan, mounting, `state`,
every other route), but a GET of one of the widget page's fixed paths goes straight
through the app's own middleware (request log, header limit, origin guard) to the
endpoint, with an unexpected error answered by the app's own crash page, as the
router's path would.

When the endpoint can say what it would send (`answer`) and the middleware are the
request log and gates (`refusal`: the header limit, the origin guard), the whole chain
is one coroutine (`Direct`): the same steps in the same order, but no layer awaits the
next and no `send` is wrapped, which is most of what a warm view costs beyond its own
work.

The route is set where the router would set it, after the gates: a request they refuse
counts as `unmatched` on either path (the request log's label).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .ops.requestlog import RequestLog, with_id
from .responses import Answer

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
            endpoint: ASGIApp = CrashPage(route.app, self._crash, route)
            for middleware in reversed(self.user_middleware):
                factory, args, kwargs = middleware  # Starlette's own (cls, args, kwargs)
                endpoint = factory(endpoint, *args, **kwargs)
            shortcuts[route.path] = (route, Direct.of(endpoint, route.app, self._crash))
        return Shortcut(stack, shortcuts)


@runtime_checkable
class Answering(Protocol):
    async def answer(self, scope: Scope, receive: Receive) -> Answer: ...


@runtime_checkable
class Gate(Protocol):
    def refusal(self, scope: Scope) -> Answer | None: ...


class Shortcut:
    """GETs of the fixed paths in `shortcuts` go to their own chain; the rest to `app`.
    (The route is the chain's to set, past its gates.)"""

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
                scope["path_params"] = {}
                await found[1](scope, receive, send)
                return
        await self.app(scope, receive, send)


class CrashPage:
    """The route's endpoint, as the router would call it (the route set in the scope),
    with the crash wrapper: an unexpected error becomes the app's crash page, if nothing
    was sent yet."""

    def __init__(self, app: ASGIApp, crash: Crash, route: Route) -> None:
        self.app = app
        self.crash = crash
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self.route
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


class Direct:
    """The request log, its gates and an answering endpoint, as one coroutine.

    The same steps as the middleware chain: the request id, each gate in the chain's
    order (the first refusal is the answer), the endpoint's answer, the crash page for
    an unexpected error before anything was sent, the request's one line logged
    before its bytes leave, `X-Request-ID` on the answer.
    """

    def __init__(
        self,
        log: RequestLog,
        gates: tuple[Gate, ...],
        endpoint: Answering,
        crash: Crash,
        route: Route,
    ) -> None:
        self.log = log
        self.gates = gates
        self.endpoint = endpoint
        self.crash = crash
        self.route = route

    @classmethod
    def of(cls, chain: ASGIApp, endpoint: ASGIApp, crash: Crash) -> ASGIApp:
        """`chain` folded into one `Direct`, if its layers allow it; else `chain`."""
        if not isinstance(chain, RequestLog) or not isinstance(endpoint, Answering):
            return chain
        gates: list[Gate] = []
        layer = chain.app
        while not isinstance(layer, CrashPage):
            if not isinstance(layer, Gate):
                return chain  # a layer that only wraps: the chain it is
            gates.append(layer)
            layer = layer.app
        return cls(chain, tuple(gates), endpoint, crash, layer.route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        state = self.log.begin(scope)  # None: a request log further out has it
        try:
            answer = await self._answer(scope, receive)
        except BaseException:
            if state is not None:  # the crash page failed too: the line still says so
                self.log.record(scope, state, 500, started)
            raise
        if state is not None:
            answer.raw_headers = with_id(answer.raw_headers, state["request_id"])
            self.log.record(scope, state, answer.status_code, started)
        await answer(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive) -> Answer:
        try:
            for gate in self.gates:
                refused = gate.refusal(scope)
                if refused is not None:
                    return refused
            scope["route"] = self.route
            return await self.endpoint.answer(scope, receive)
        except Exception as exc:
            return await self.crash(Request(scope, receive), exc)
