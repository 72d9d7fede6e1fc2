"""Several widgets in one app (`multi.app`): a Returning.AI store under /rewards and a
Hissuno chat under /support, against their stand-ins; each answers as it does alone
(its short path taken under the mount), the shared parts are made once, each widget's
keys are its own, and the metrics carry a `widget` label."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn

import widget_proxy
from bench.users import session_cookie
from tests.support import EMAIL
from tests.support.configs import TwoVendors, two_vendors
from tests.support.metrics import samples
from widget_proxy.config import WidgetsConfig
from widget_proxy.fastpath import ProxyApp
from widget_proxy.multi import WidgetsApp, create_widgets_app

pytestmark = pytest.mark.anyio


@pytest.fixture
def vendors() -> Any:
    with two_vendors() as found:
        yield found


@pytest.fixture
async def served(vendors: TwoVendors, tmp_path: Path) -> AsyncIterator[tuple[WidgetsApp, Any]]:
    config = WidgetsConfig.load(vendors.write(tmp_path / "widgets.toml"), env_file=None)
    app = create_widgets_app(config)
    cookie = session_cookie(vendors.secret, {"email": EMAIL})
    transport = httpx2.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with (
        app.router.lifespan_context(app),
        httpx2.AsyncClient(
            transport=transport, base_url="http://shop.test", cookies={"session": cookie}
        ) as client,
    ):
        yield app, client


async def test_both_widgets_answer_under_their_mounts(served: tuple[WidgetsApp, Any]) -> None:
    app, client = served
    rewards = await client.get("/rewards/widget")
    support = await client.get("/support/widget")
    assert rewards.status_code == 200, rewards.text
    assert support.status_code == 200, support.text
    assert "demo-project" in support.text  # Hissuno's loader page, its project
    token = await client.post("/support/widget/token", headers={"origin": "http://shop.test"})
    assert token.status_code == 200, token.text  # its renewal, under the mount
    again = await client.get("/rewards/widget")
    assert again.status_code == 200
    widgets = [w for _, w in app.mounts]
    assert all(isinstance(w, ProxyApp) for w in widgets)
    # Each warm view took its widget's short path, as alone.
    assert [sum(s.taken for s in w.shortcuts) for w in widgets] == [2, 1]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/rewards", 404),  # the mount itself is no page
        ("/rewardsx/widget", 404),  # a prefix, not a segment: nobody's
        ("/support/widget/", 404),  # no redirect built from the Host
        ("/healthz", 200),
        ("/rewards/healthz", 200),  # each widget's own checks, under its mount
        ("/support/readyz", 200),
        ("/elsewhere", 404),
    ],
)
async def test_dispatch_is_by_whole_segments(
    served: tuple[WidgetsApp, Any], path: str, status: int
) -> None:
    _, client = served
    assert (await client.get(path)).status_code == status


async def test_root_health_and_readiness_name_each_widget(served: tuple[WidgetsApp, Any]) -> None:
    _, client = served
    health = (await client.get("/healthz")).json()
    assert health["widgets"] == {"rewards": {"mount": "/rewards"}, "support": {"mount": "/support"}}
    ready = (await client.get("/readyz")).json()
    assert ready["ready"] is True
    assert set(ready["widgets"]) == {"rewards", "support"}
    assert ready["widgets"]["support"]["cache"] == {"topology": "memory"}


async def test_one_registry_labelled_by_widget(served: tuple[WidgetsApp, Any]) -> None:
    _, client = served
    await client.get("/rewards/widget")
    await client.get("/support/widget")
    found = samples((await client.get("/metrics")).text)
    requests = {
        dict(labels)["widget"]: value
        for (name, labels), value in found.items()
        if name == "widget_proxy_requests_total" and dict(labels)["route"] == "/widget"
    }
    assert requests == {"rewards": 1.0, "support": 1.0}


async def test_shared_parts_are_made_once_per_vendor(served: tuple[WidgetsApp, Any]) -> None:
    app, _ = served
    assert app.state.shared.clients == 2  # one per vendor (both on loopback, apart)
    assert app.state.shared.pools == 0  # memory://: no Redis to share


async def test_servers_see_an_asgi_3_app(served: tuple[WidgetsApp, Any]) -> None:
    """The dispatch returns the widget's coroutine rather than being one (no frame of its
    own on a view): a server that inspects the app must still see ASGI 3."""
    app, _ = served
    config = uvicorn.Config(app)
    config.load()
    assert config.interface == "asgi3"
    assert asyncio.iscoroutinefunction(app.__call__)


async def test_forget_reaches_every_widget(
    served: tuple[WidgetsApp, Any], vendors: TwoVendors
) -> None:
    app, client = served
    other = {"cookie": "session=" + session_cookie(vendors.secret, {"email": "other@example.com"})}
    signins = vendors.stand_ins["rewards"].calls

    async def views(cookie: dict[str, str] | None = None) -> list[str]:
        tokens = []
        for mount in ("/rewards", "/support"):
            answer = await client.get(f"{mount}/widget", headers=cookie)
            assert answer.status_code == 200, answer.text
            token = await client.post(
                f"{mount}/widget/token", headers={"origin": "http://shop.test", **(cookie or {})}
            )
            tokens.append(token.json()["token"])  # (not expiresIn: it counts down)
        return tokens

    mine, theirs = await views(), await views(other)
    assert signins["signin"] == 2
    revocations = [widget.state.revocations for _, widget in app.mounts]
    assert await widget_proxy.forget(app, EMAIL) == 1
    again = await views()
    assert signins["signin"] == 3  # the forgotten user's rewards: once
    assert mine[0] != again[0]  # a new Returning.AI token
    # (Hissuno's is signed here: the same claims within a second are the same token)
    assert all(r.suffix(EMAIL) and not r.suffix("other@example.com") for r in revocations)
    assert await views(other) == theirs  # the other user untouched
    assert signins["signin"] == 3


async def test_workers_sharing_a_folder_learn_each_others_forgets(
    vendors: TwoVendors, tmp_path: Path
) -> None:
    config = WidgetsConfig.load(vendors.write(tmp_path / "widgets.toml"), env_file=None)
    shared = tmp_path / "workers"
    shared.mkdir()
    one, two = (create_widgets_app(config, shared_dir=str(shared)) for _ in range(2))
    async with one.router.lifespan_context(one), two.router.lifespan_context(two):
        assert await widget_proxy.forget(one, EMAIL) == 1
        theirs = [widget.state.revocations for _, widget in two.mounts]
        for _ in range(300):  # each reads its file every quarter of a second
            if all(r.suffix(EMAIL) for r in theirs):
                break
            await asyncio.sleep(0.01)
        assert all(r.suffix(EMAIL) for r in theirs)
    assert sorted(p.name for p in shared.iterdir()) == ["widget-rewards", "widget-support"]
