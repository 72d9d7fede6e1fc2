"""Two vendors mounted in a merchant's FastAPI app (`mount_widgets`): each at its path,
under the app's own lifespan; mounts that collide are refused at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
import pytest
from fastapi import FastAPI

from bench.users import session_cookie
from tests.support import EMAIL
from tests.support.configs import two_vendors
from widget_proxy import Settings, SettingsError, mount_widgets, widget_settings
from widget_proxy.multi import WidgetsApp

pytestmark = pytest.mark.anyio


async def test_two_vendors_in_a_fastapi_app() -> None:
    with two_vendors() as vendors:
        env = vendors.shared
        rewards, support = (
            widget_settings({k: v for k, v in table.items() if k != "mount"}, env=env)
            for table in vendors.widgets.values()
        )
        widgets: WidgetsApp | None = None

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            assert widgets is not None
            async with widgets.router.lifespan_context(widgets):
                yield

        app = FastAPI(lifespan=lifespan)

        @app.get("/")
        async def home() -> dict[str, str]:
            return {"shop": "home"}

        widgets = mount_widgets(app, {"/rewards": rewards, "/support": support})
        cookie = {"session": session_cookie(vendors.secret, {"email": EMAIL})}
        transport = httpx2.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with (
            app.router.lifespan_context(app),
            httpx2.AsyncClient(transport=transport, base_url="http://s", cookies=cookie) as c,
        ):
            assert (await c.get("/")).json() == {"shop": "home"}
            assert (await c.get("/rewards/widget")).status_code == 200
            assert "demo-project" in (await c.get("/support/widget")).text
            assert widgets.state.shared.clients == 2


def test_mounts_that_nest_are_refused(make_settings: type[Settings]) -> None:
    settings = make_settings()
    with pytest.raises(SettingsError) as caught:
        mount_widgets(FastAPI(), {"/shop": settings, "/shop/chat": settings, "bad": settings})
    assert caught.value.problems == [
        "widgets.bad: mount: 'bad' is not a mount path: /name or /name/name (letters, digits,"
        " . _ ~ -), no trailing slash",
        "widgets.shop-chat: mount: /shop/chat is inside /shop (widgets.shop); mounts must not nest",
    ]
