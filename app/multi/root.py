"""The process's own answers when it serves several widgets: `/healthz` and `/readyz`
at the root, each widget's part named.

`/readyz` asks each widget's own `/readyz` (in-process, under its mount: the widget
answers exactly as it does alone) and reports them side by side; like a widget's, it
is 200 whenever the process can serve, and what is degraded is said in the body.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Scope

NO_STORE = {"cache-control": "no-store"}


def health(widgets: Sequence[tuple[str, str]]) -> Callable[[Request], Awaitable[Response]]:
    """Liveness: the process answers, and which widget is mounted where."""
    body = {"ok": True, "widgets": {name: {"mount": mount} for name, mount in widgets}}

    async def healthz(request: Request) -> Response:
        return JSONResponse(body, headers=NO_STORE)

    return healthz


class Readiness:
    """Each widget's readiness, by name; `ready` while every widget is."""

    def __init__(self, widgets: Sequence[tuple[str, str]], apps: Sequence[ASGIApp]) -> None:
        pairs = zip(widgets, apps, strict=True)
        self._widgets = [(name, mount, app) for (name, mount), app in pairs]

    async def respond(self, request: Request) -> Response:
        answers = await asyncio.gather(
            *(_ask(app, request.scope, mount) for _, mount, app in self._widgets)
        )
        found = {name: answer for (name, _, _), answer in zip(self._widgets, answers, strict=True)}
        ready = all(answer.get("ready") is True for answer in found.values())
        return JSONResponse({"ready": ready, "widgets": found}, headers=NO_STORE)


async def _ask(app: ASGIApp, scope: Scope, mount: str) -> dict[str, Any]:
    """`app`'s answer to GET {mount}/readyz, as JSON (the peer of the request asking)."""
    root = scope.get("root_path", "")
    path = f"{root}{mount}/readyz"
    inner: Scope = {
        "type": "http",
        "asgi": scope.get("asgi", {"version": "3.0"}),
        "http_version": "1.1",
        "method": "GET",
        "scheme": scope.get("scheme", "http"),
        "path": path,
        "raw_path": path.encode(),
        "root_path": root + mount,
        "query_string": b"",
        "headers": [(b"host", b"readyz")],
        "client": scope.get("client"),
        "server": scope.get("server"),
        "state": {},
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    try:
        await app(inner, receive, send)
        status = next(m["status"] for m in sent if m["type"] == "http.response.start")
        if status != 200:
            return {"ready": False, "degraded": {"app": f"/readyz answered {status}"}}
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        answer: dict[str, Any] = json.loads(body)
    except Exception as exc:  # one widget's failure is its own line, not the whole answer's
        return {"ready": False, "degraded": {"app": f"no readiness ({type(exc).__name__})"}}
    return answer
