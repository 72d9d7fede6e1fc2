"""Hissuno's stand-in itself, once: what the proxy's Hissuno tests lean on."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
from starlette.testclient import TestClient

from tests.support import fresh_secret
from tests.support.vendors import HISSUNO_KEY
from widget_proxy.providers.hissuno import HissunoSettings, HissunoStandIn
from widget_proxy.settings import Settings

CHAT = "/api/integrations/widget/chat"


HELLO = [{"role": "user", "content": "hello"}]


def user_jwt(claims: dict[str, object], key: str = HISSUNO_KEY) -> str:
    return jwt.encode({"exp": int(time.time()) + 3600, **claims}, key, algorithm="HS256")


def sse_events(text: str) -> list[dict[str, Any]]:
    """The events of a Hissuno stream: each is `event: message`, its type in the data."""
    events = []
    for block in filter(None, text.split("\n\n")):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        assert lines["event"] == "message"
        events.append(json.loads(lines["data"]))
    return events


ORIGIN = "https://shop.example"


def test_hissuno_stand_in() -> None:
    """The stand-in itself, once: what the proxy's Hissuno tests lean on."""
    vendor = HissunoStandIn(
        project_id="proj-1", secret_key=HISSUNO_KEY, allowed_origins=("shop.example",)
    )
    token = user_jwt({"userId": "u-42"})
    body = {"messages": HELLO, "projectId": "proj-1", "userId": "someone-else",
            "widgetToken": token}  # fmt: skip
    here = {"origin": ORIGIN}

    with TestClient(vendor.app()) as client:
        settings = client.get("/api/integrations/widget?projectId=proj-1", headers=here)
        elsewhere = client.post(CHAT, json=body, headers={"origin": "https://evil.example"})
        tokenless = client.post(CHAT, json={**body, "widgetToken": ""}, headers=here)
        started = client.post(CHAT, json=body, headers=here)
        query = {"projectId": "proj-1", "sessionId": started.json()["sessionId"]}
        stream = client.get(f"{CHAT}/stream", params=query, headers=here)

    assert settings.json()["tokenRequired"] is True
    assert (elsewhere.status_code, elsewhere.json()) == (403, {"error": "Origin not allowed"})
    assert (tokenless.status_code, tokenless.json()) == (401, {"error": "Widget token is required"})
    assert started.status_code == 201
    assert vendor.last_user_id == "u-42"  # the token's user, not the body's
    events = sse_events(stream.text)
    assert [e["type"] for e in events] == [
        "connected", "message-start", "message-chunk", "message-complete",
    ]  # fmt: skip
    assert events[2]["content"] == "Hi, u-42! How can we help?"
    expired = user_jwt({"userId": "u", "exp": int(time.time()) - 61})  # past the 60 s leeway
    assert vendor.token_problem(expired) == "Token expired"


def test_hissuno_stand_in_points_the_proxy_at_itself() -> None:
    vendor = HissunoStandIn(project_id="p", secret_key=HISSUNO_KEY)
    env = vendor.proxy_env("http://127.0.0.1:9")

    group = Settings.from_env({**env, "SESSION_SECRET": fresh_secret()}).vendor

    assert isinstance(group, HissunoSettings)
    assert group.api_url == "http://127.0.0.1:9/api/integrations/widget/chat"
    assert group.script_url == "http://127.0.0.1:9/widget.js"


def test_hissuno_stand_in_judges_the_token_of_a_close() -> None:
    """`check` proves a key here: the token is verified, a chat never started is not
    recorded, and a wrong key is Hissuno's 401 `Invalid token`."""
    vendor = HissunoStandIn(project_id="proj-1", secret_key=HISSUNO_KEY)
    token = user_jwt({"userId": "u-42"})
    close = {"projectId": "proj-1", "sessionId": "never-started", "widgetToken": token}
    wrong_key = user_jwt({"userId": "u-42"}, key="sk_live_" + "Zz9-_" * 6 + "ab")

    with TestClient(vendor.app()) as client:
        unknown = client.post(f"{CHAT}/close", json=close)
        refused = client.post(f"{CHAT}/close", json={**close, "widgetToken": wrong_key})
        tokenless = client.post(f"{CHAT}/close", json={**close, "widgetToken": ""})
        other = client.post(f"{CHAT}/close", json={**close, "projectId": "proj-2"})
        started = client.post(
            CHAT, json={"messages": HELLO, "projectId": "proj-1", "widgetToken": token}
        ).json()["sessionId"]
        ended = client.post(f"{CHAT}/close", json={**close, "sessionId": started})

    assert unknown.status_code == 200
    assert unknown.json() == {"success": True, "reviewTriggered": False}
    assert (refused.status_code, refused.json()) == (401, {"error": "Invalid token"})
    assert (tokenless.status_code, tokenless.json()) == (401, {"error": "Widget token is required"})
    assert (other.status_code, other.json()) == (401, {"error": "Invalid project ID"})
    assert ended.json()["reviewTriggered"] is True
    assert vendor.sessions == {started}  # the close of a chat never started recorded nothing
    assert vendor.closed == {started}
