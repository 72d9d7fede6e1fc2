"""What the widgets of one process share (`multi.shared`, through `sharing.Shared`):
one Redis pool for one CACHE_URL, one upstream client per vendor; each widget's keys
its own, so caches and rate counts stay apart."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from bench.users import session_cookie
from tests.support import EMAIL
from tests.support.configs import TwoVendors, two_vendors
from tests.support.metrics import samples, value
from tests.support.redis import require_redis
from widget_proxy.cache import Keys
from widget_proxy.config import WidgetsConfig
from widget_proxy.multi import create_widgets_app

pytestmark = pytest.mark.anyio


async def test_one_redis_pool_for_one_cache_url(tmp_path: Path) -> None:
    url = require_redis()
    vendors: TwoVendors
    with two_vendors() as vendors:
        vendors.shared["CACHE_URL"] = url
        # A third widget of a vendor already there shares its client too.
        vendors.widgets["more"] = {**vendors.widgets["support"], "mount": "/more"}
        config = WidgetsConfig.load(vendors.write(tmp_path / "w.toml"), env_file=None)
        app = create_widgets_app(config)
        async with app.router.lifespan_context(app):
            assert app.state.shared.pools == 1
            assert app.state.shared.clients == 2
            (redis,) = app.state.shared._redis.values()
            await redis.ping()


def test_each_widget_keys_its_own() -> None:
    purpose = b"widget-proxy vendor namespace"
    alone = Keys("s" * 40).hasher(purpose)("x")
    rewards = Keys("s" * 40, scope="rewards").hasher(purpose)("x")
    support = Keys("s" * 40, scope="support").hasher(purpose)("x")
    assert len({alone, rewards, support}) == 3
    assert Keys("s" * 40, scope="").hasher(purpose)("x") == alone  # one widget: as before


async def test_a_shared_clients_calls_are_labelled_with_every_widget_using_it(
    tmp_path: Path,
) -> None:
    with two_vendors() as vendors:
        vendors.widgets["more"] = {**vendors.widgets["rewards"], "mount": "/more"}
        config = WidgetsConfig.load(vendors.write(tmp_path / "w.toml"), env_file=None)
        app = create_widgets_app(config)
        cookie = {"session": session_cookie(vendors.secret, {"email": EMAIL})}
        transport = httpx2.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with (
            app.router.lifespan_context(app),
            httpx2.AsyncClient(
                transport=transport, base_url="http://shop.test", cookies=cookie
            ) as client,
        ):
            assert (await client.get("/rewards/widget")).status_code == 200
            found = samples(app.state.metrics.exposition().decode())
    calls = "widget_proxy_upstream_calls_total"
    assert value(found, calls, kind="signin", outcome="ok", widget="rewards,more") == 1
    assert not [s for s in found if s[0] == calls and dict(s[1]).get("widget") == "rewards"]
