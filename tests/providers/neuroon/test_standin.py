"""Neuroon's stand-in itself, once: what the proxy's Neuroon tests lean on."""

from __future__ import annotations

import time

from tests.support.vendors import SHOP_KEY, search
from widget_proxy.providers.neuroon import NeuroonStandIn
from widget_proxy.providers.neuroon.tokens import shop_token


def test_neuroon_stand_in(neuroon: tuple[NeuroonStandIn, str]) -> None:
    """The stand-in itself, once: what the proxy's Neuroon tests lean on."""
    vendor, url = neuroon
    vendor.shop_url, vendor.allowed_origins = "https://shop.example", ("https://partner.example",)
    now = int(time.time())
    good = shop_token("shop-1", SHOP_KEY, now)

    served = search(url, good, "https://partner.example")
    tampered = search(url, shop_token("shop-1", "sk_" + "f" * 32, now))
    old = search(url, shop_token("shop-1", SHOP_KEY, now - 24 * 3600 - 5))
    elsewhere = search(url, good, "https://evil.example")
    vendor.rate_limit = 0  # the next request is over it, whichever minute it falls in
    limited = search(url, good)

    assert served.status_code == 200
    assert (tampered.status_code, old.status_code, elsewhere.status_code) == (401, 401, 403)
    assert set(tampered.json()) == {"timestamp", "status", "error", "message", "path"}
    assert limited.status_code == 429
    body = limited.json()
    assert (body["error"], body["limit"], body["remaining"]) == ("rate_limit_exceeded", 0, 0)
    assert int(limited.headers["retry-after"]) == body["retryAfter"] > 0
