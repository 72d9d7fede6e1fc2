"""The app's one pipeline, and the widget page's short path through it.

`ProxyApp` is the Starlette app `create_app` returns, unchanged for everything else
(lifespan, mounting, `state`, routing), but with its front built here, once:

    RequestLog → gates (HeaderLimit, OriginGuard) → Starlette (errors, router) → route
               ↘ GET of a widget page path: ShortPath (the same gates → the endpoint)

Every request goes through the request log; a GET of one of the widget page's fixed
paths is answered by `ShortPath`: the same gates, in the same order, then the
endpoint's `answer`, an unexpected error answered by the app's own crash page, as the
router's path would. Nothing wraps `send` or awaits a layer on that path: measured with
callgrind (BENCHMARKS.md), skipping the router and Starlette's error layers buys about a
fifth of a warm view's instructions, and not awaiting each layer another tenth.

The route is set where the router would set it, after the gates: a request they refuse
counts as `unmatched` on either path (the request log's label). `ShortPath.taken`
counts the requests it answered (a test holds a warm view to it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope

from .ops.requestlog import Answerer
from .responses import Answer, Refusing

Crash = Callable[[Request, Exception], Awaitable[Response]]
Answering = Callable[[Scope, Receive], Awaitable[Answer]]  # an endpoint's `answer`


class ProxyApp(Starlette):
    """`log`: the request log around what it is given (and the short paths' answers),
    and whatever goes around it (the server span, when tracing: `ops.spans`);
    `gates`: each gate around what it is given, outermost first; `short`: the routes
    whose GETs take the short path, with their endpoints' `answer`."""

    def __init__(
        self,
        *args: Any,
        log: Callable[[ASGIApp, Mapping[str, Answerer]], ASGIApp],
        gates: Sequence[Callable[[ASGIApp], Refusing]] = (),
        short: Sequence[tuple[Route, Answering]] = (),
        crash: Crash,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._log = log
        self._gates = gates
        self._short = short
        self._crash = crash
        self.shortcuts: list[ShortPath] = []  # the built short paths (for tests and metrics)

    def build_middleware_stack(self) -> ASGIApp:
        app = super().build_middleware_stack()  # Starlette's errors and router
        gates: list[Refusing] = []
        for gate in reversed(self._gates):
            app = gate(app)
            gates.insert(0, app)
        self.shortcuts = [ShortPath(tuple(gates), answer, route, self._crash)
                          for route, answer in self._short]  # fmt: skip
        return self._log(app, {s.route.path: s for s in self.shortcuts})


class ShortPath:
    """The gates, then the endpoint's answer, as the router's path would give them:
    the first refusal is the answer; the route set past the gates; an unexpected error
    the app's crash page."""

    def __init__(
        self, gates: tuple[Refusing, ...], answer: Answering, route: Route, crash: Crash
    ) -> None:
        self.gates = gates
        self.answer = answer
        self.route = route
        self.crash = crash
        self.taken = 0

    async def __call__(self, scope: Scope, receive: Receive) -> Answer:
        self.taken += 1
        try:
            for gate in self.gates:
                refused = gate.refusal(scope)
                if refused is not None:
                    return refused
            scope["route"] = self.route
            scope["path_params"] = {}
            return await self.answer(scope, receive)
        except Exception as exc:
            return await self.crash(Request(scope, receive), exc)
