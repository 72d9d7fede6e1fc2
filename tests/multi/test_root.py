"""The root's `/readyz` (`multi.root`): each widget's own answer by name; a widget that
can't answer is not ready, and says why, without failing the others' answers."""

from __future__ import annotations

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from widget_proxy.multi.root import Readiness

pytestmark = pytest.mark.anyio


def widget(answer: Response | None) -> Starlette:
    async def readyz(request: Request) -> Response:
        if answer is None:
            raise RuntimeError("broken")
        return answer

    return Starlette(routes=[Route("/readyz", readyz)])


async def test_each_widget_answers_for_itself() -> None:
    readiness = Readiness(
        [("good", "/good"), ("failing", "/failing"), ("broken", "/broken")],
        [
            widget(JSONResponse({"ready": True, "degraded": {}})),
            widget(PlainTextResponse("no", status_code=500)),
            widget(None),
        ],
    )
    root = Starlette(routes=[Route("/readyz", readiness.respond)])
    transport = httpx2.ASGITransport(app=root, raise_app_exceptions=False)
    async with httpx2.AsyncClient(transport=transport, base_url="http://x") as client:
        answer = await client.get("/readyz")
    assert answer.status_code == 200
    assert answer.json() == {
        "ready": False,
        "widgets": {
            "good": {"ready": True, "degraded": {}},
            "failing": {"ready": False, "degraded": {"app": "/readyz answered 500"}},
            "broken": {"ready": False, "degraded": {"app": "no readiness (RuntimeError)"}},
        },
    }
