"""Fixtures of the Neuroon tests: its stand-in on a real loopback server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.vendors import SHOP_KEY
from widget_proxy.providers.neuroon import NeuroonStandIn
from widget_proxy.servers import BackgroundServer


@pytest.fixture
def neuroon(upstream: str) -> Iterator[tuple[NeuroonStandIn, str]]:
    vendor = NeuroonStandIn(shop_id="shop-1", api_key=SHOP_KEY)
    with BackgroundServer(vendor.app(), timeout_graceful_shutdown=1) as server:
        yield vendor, server.url
