"""A stand-in for Hissuno's widget API, checking what Hissuno checks, in its order.

`POST /api/integrations/widget/chat` starts a chat run: `messages`, then `projectId`,
then the origin, then (for a project with `token_required`) the `widgetToken` in the
JSON body, verified as HS256 with the project's secret and `leeway` (60 s) of clock
tolerance, with a `userId` claim. The token's user replaces the body's; a project that
requires no token ignores one and takes the body's `userId`. The reply then streams from
`GET …/chat/stream` as Server-Sent Events in Hissuno's framing: every event is
`event: message` with the event's `type` in its JSON data. `GET /api/integrations/widget`
is the widget's settings. `POST …/chat/close` ends a chat: its token is verified as the
chat's is (when one is sent, or the project requires one), then an unknown `sessionId` is
a success that changes nothing, as Hissuno's idempotent close is (what `widget-proxy
check` asks, to prove the key without starting a chat). The origin allow-list takes
exact hosts and `*.domain` wildcards (which also match the bare domain),
case-insensitively, on the host only; an empty list allows every origin, as Hissuno did
in development (newer versions refuse every origin then, and a call without one).
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_SCRIPT = (Path(__file__).resolve().parent / "vendor" / "hissuno.js").read_bytes()
LEEWAY = 60
API = "/api/integrations/widget"
SSE_HEADERS = {"cache-control": "no-cache, no-transform", "x-accel-buffering": "no"}
# Hissuno's widget settings when the project has changed none of them.
DEFAULT_SETTINGS: dict[str, object] = {
    "trigger": "bubble",
    "display": "sidepanel",
    "shortcut": "mod+k",
    "drawerBadgeLabel": "Support",
    "variant": "sidepanel",
    "theme": "light",
    "position": "bottom-right",
    "title": "Support",
    "initialMessage": "Hi! How can I help you today?",
}


class Refused(Exception):
    """A chat request Hissuno answers with an error: its status and `error` text."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


@dataclass
class HissunoStandIn:
    project_id: str
    secret_key: str
    allowed_origins: tuple[str, ...] = ()
    token_required: bool = True  # the project's `widget_token_required`
    leeway: int = LEEWAY  # jwt.verify's clockTolerance, in seconds
    agent_fails: bool = False  # the support agent errs: the stream ends in `error`
    calls: Counter[str] = field(default_factory=Counter)
    tokens_seen: list[str] = field(default_factory=list)  # each chat body's widgetToken
    last_user_id: str | None = None  # whom the last chat run was for (None: anonymous)
    sessions: set[str] = field(default_factory=set)  # every chat's sessionId
    closed: set[str] = field(default_factory=set)  # the sessionIds of the chats closed
    _replies: dict[str, str] = field(default_factory=dict, repr=False)  # by sessionId

    def proxy_env(self, url: str) -> dict[str, str]:
        return {
            "TOKEN_PROVIDER": "hissuno",
            "HISSUNO_SECRET_KEY": self.secret_key,
            "HISSUNO_PROJECT_ID": self.project_id,
            "HISSUNO_SCRIPT_URL": f"{url}/widget.js",
            "HISSUNO_API_URL": f"{url}{API}/chat",
        }

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(f"{API}/chat", self._chat, methods=["POST", "OPTIONS"]),
                Route(f"{API}/chat/stream", self._stream, methods=["GET", "OPTIONS"]),
                Route(f"{API}/chat/close", self._close, methods=["POST", "OPTIONS"]),
                Route(API, self._settings, methods=["GET", "OPTIONS"]),
                Route("/widget.js", self._script, methods=["GET"]),
            ]
        )

    async def _chat(self, request: Request) -> Response:
        origin = _origin(request)
        if request.method == "OPTIONS":
            return _preflight(origin, "GET, POST, OPTIONS")
        self.calls["chat"] += 1
        cors = _cors(origin, "GET, POST, OPTIONS")
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "Failed to process request"}, 500, headers=cors)
        try:
            session_id = self._start(body if isinstance(body, dict) else {}, origin)
        except Refused as refused:
            return JSONResponse({"error": refused.error}, refused.status, headers=cors)
        answer = {
            "message": "Chat started.",
            "status": "processing",
            "sessionId": session_id,
            "runId": str(uuid.uuid4()),
            "chatRunId": str(uuid.uuid4()),
        }
        return JSONResponse(answer, 201, headers=cors)

    def _start(self, body: dict[str, Any], origin: str) -> str:
        """The chat run's sessionId, its reply waiting for the stream; or Refused."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise Refused(400, "Messages array is required")
        self._project(body.get("projectId"), origin)
        if "widgetToken" in body:
            self.tokens_seen.append(str(body["widgetToken"]))
        user_id = self._user_id(body)
        self.last_user_id = user_id
        session_id = body.get("sessionId")
        if not isinstance(session_id, str) or not session_id:
            session_id = f"session_{int(time.time() * 1000):x}_{secrets.token_hex(4)}"
        self._replies[session_id] = reply_for(user_id)
        self.sessions.add(session_id)
        return session_id

    def _project(self, project_id: object, origin: str) -> None:
        """Refused unless `project_id` is this project and `origin` may use it."""
        if not project_id:
            raise Refused(400, "projectId is required")
        if project_id != self.project_id:
            raise Refused(401, "Invalid project ID")
        if not self.origin_allowed(origin):
            raise Refused(403, "Origin not allowed")

    def _user_id(self, body: dict[str, Any]) -> str | None:
        """Whom the chat is for: the token's user when the project requires a token."""
        if not self.token_required:
            # The body's word is all there is: the widget's userId prop, if any.
            user_id = body.get("userId")
            return user_id if isinstance(user_id, str) and user_id else None
        token = body.get("widgetToken")
        if not token:
            raise Refused(401, "Widget token is required")
        claims, problem = self.verify(str(token))
        if problem is not None:
            raise Refused(401, problem)
        return str(claims["userId"])

    async def _close(self, request: Request) -> Response:
        origin = _origin(request)
        if request.method == "OPTIONS":
            return _preflight(origin, "POST, OPTIONS")
        self.calls["close"] += 1
        cors = _cors(origin, "POST, OPTIONS")
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "Unable to close session."}, 500, headers=cors)
        body = body if isinstance(body, dict) else {}
        session_id = body.get("sessionId")
        try:
            if not isinstance(session_id, str) or not session_id:
                raise Refused(400, "sessionId is required")
            self._project(body.get("projectId"), origin)
            token = body.get("widgetToken")
            if self.token_required and not token:
                raise Refused(401, "Widget token is required")
            if token and (problem := self.verify(str(token))[1]) is not None:
                raise Refused(401, problem)
        except Refused as refused:
            return JSONResponse({"error": refused.error}, refused.status, headers=cors)
        if session_id not in self.sessions:  # never started: nothing to close or record
            return JSONResponse({"success": True, "reviewTriggered": False}, headers=cors)
        self._replies.pop(session_id, None)
        self.closed.add(session_id)
        review = {"success": True, "reviewTriggered": True, "runId": f"review-{session_id}"}
        return JSONResponse(review, headers=cors)

    async def _stream(self, request: Request) -> Response:
        origin = _origin(request)
        if request.method == "OPTIONS":
            return _preflight(origin, "GET, OPTIONS")
        self.calls["stream"] += 1
        cors = _cors(origin, "GET, OPTIONS")
        project_id = request.query_params.get("projectId")
        session_id = request.query_params.get("sessionId", "")
        try:
            if not project_id:
                raise Refused(400, "projectId is required")
            if not session_id:
                raise Refused(400, "sessionId is required")
            self._project(project_id, origin)
            reply = self._replies.pop(session_id, None)
            if reply is None:
                raise Refused(404, "No running chat found. Start a new chat first.")
        except Refused as refused:
            return JSONResponse({"error": refused.error}, refused.status, headers=cors)
        headers = {**cors, **SSE_HEADERS}
        return Response(self._events(reply), media_type="text/event-stream", headers=headers)

    def _events(self, reply: str) -> bytes:
        """The stream of one chat run, whole: the stand-in's agent has nothing to wait for."""
        events = [_event("connected", message="Connected to chat stream")]
        if self.agent_fails:
            events.append(_event("error", message="Chat encountered an issue. Please try again."))
            return b"".join(events)
        events += [
            _event("message-start", message="Starting response generation"),
            _event("message-chunk", content=reply),
            _event(
                "message-complete", message="Response complete", data={"contentLength": len(reply)}
            ),
        ]
        return b"".join(events)

    async def _settings(self, request: Request) -> Response:
        origin = _origin(request)
        if request.method == "OPTIONS":
            return _preflight(origin, "GET, OPTIONS")
        self.calls["settings"] += 1
        project_id = request.query_params.get("projectId")
        # Hissuno sends CORS headers with the settings only: its refusals stay unreadable.
        if not project_id:
            return JSONResponse({"error": "Missing projectId parameter."}, 400)
        if project_id != self.project_id:
            return JSONResponse({"error": "Project not found."}, 404)
        if not self.origin_allowed(origin):
            return JSONResponse({"error": "Origin not allowed.", "blocked": True}, 403)
        body = {**DEFAULT_SETTINGS, "tokenRequired": self.token_required}
        return JSONResponse(body, headers={"access-control-allow-origin": origin})

    async def _script(self, request: Request) -> Response:
        return Response(_SCRIPT, media_type="text/javascript")

    def verify(self, token: str) -> tuple[dict[str, object], str | None]:
        """The token's claims, or why Hissuno refuses it."""
        try:
            claims = jwt.decode(token, self.secret_key, algorithms=["HS256"], leeway=self.leeway)
        except jwt.ExpiredSignatureError:
            return {}, "Token expired"
        except jwt.InvalidTokenError:
            return {}, "Invalid token"
        user_id = claims.get("userId")
        if not isinstance(user_id, str) or not user_id:
            return {}, "Token missing required userId field"
        return claims, None

    def token_problem(self, token: str) -> str | None:
        return self.verify(token)[1]

    def origin_allowed(self, origin: str) -> bool:
        if not self.allowed_origins:
            return True  # development mode, as Hissuno documents it
        host = (urlsplit(origin).hostname or "").lower()
        for entry in (e.lower() for e in self.allowed_origins):
            if entry.startswith("*."):
                if host == entry[2:] or host.endswith(entry[1:]):
                    return True
            elif host == (urlsplit(entry).hostname or entry):
                return True
        return False


def reply_for(user_id: str | None) -> str:
    """The stand-in agent's answer to every message, by name when it knows the user."""
    return f"Hi, {user_id}! How can we help?" if user_id else "Hi there! How can we help?"


def _origin(request: Request) -> str:
    # Hissuno judges a request without an Origin by its own origin, as Next.js sees it.
    return request.headers.get("origin") or f"{request.url.scheme}://{request.url.netloc}"


def _cors(origin: str, methods: str) -> dict[str, str]:
    # Every answer, refusals too, is readable by the page: a refused origin sees its 403.
    return {
        "access-control-allow-origin": origin,
        "access-control-allow-methods": methods,
        "access-control-allow-headers": "Content-Type",
        "vary": "Origin",
    }


def _preflight(origin: str, methods: str) -> Response:
    return Response(
        status_code=204, headers={**_cors(origin, methods), "access-control-max-age": "86400"}
    )


def _event(kind: str, **fields: object) -> bytes:
    """One event as Hissuno frames it: the type in the data, timestamped."""
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    payload = json.dumps({"type": kind, **fields, "timestamp": stamp})
    return f"event: message\ndata: {payload}\n\n".encode()
