"""/healthz, /readyz and who may read /metrics: what a load balancer and a scraper see."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.support import EMAIL, FaultyUpstream, Proxy, Respond, wait_until
from tests.support.metrics import samples, value
from tests.support.redis import private_redis


def test_healthz_and_readyz(proxy: Proxy) -> None:
    assert proxy.client.get("/healthz").status_code == 200
    ready = proxy.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "degraded": {}, "cache": {"topology": "memory"}}


def degraded_gauge(proxy: Proxy) -> float:
    return value(samples(proxy.client.get("/metrics").text), "widget_proxy_degraded", part="cache")


@pytest.mark.slow
def test_readyz_says_when_redis_stops_and_stays_ready(make_proxy: Callable[..., Proxy]) -> None:
    with private_redis() as redis:
        proxy = make_proxy(CACHE_URL=redis.url)
        assert proxy.client.get("/readyz").json() == {
            "ready": True,
            "degraded": {},
            "cache": {"topology": "single"},
        }

        redis.kill()
        assert proxy.get("/widget", EMAIL).status_code == 200  # pages still flow
        down = proxy.client.get("/readyz")
        assert down.status_code == 200  # this process can serve: don't pull it
        assert "cache" in down.json()["degraded"]
        assert degraded_gauge(proxy) == 1.0

        redis.start()
        wait_until(lambda: proxy.client.get("/readyz").json()["degraded"] == {}, timeout=15)
        wait_until(lambda: proxy.get("/widget", EMAIL).is_success and degraded_gauge(proxy) == 0.0)


def test_readyz_reports_an_open_circuit_and_a_late_success_does_not_close_it(
    make_proxy: Callable[..., Proxy], faulty: FaultyUpstream
) -> None:
    proxy = make_proxy(
        WIDGET_BASE_URL=faulty.url,
        BREAKER_FAILURES="1",
        UPSTREAM_RETRIES="0",
        BREAKER_COOLDOWN="30",
    )
    # The signin fails while the page fetch, side by side with it, succeeds a moment
    # later: a call that began before the circuit opened must not close it.
    faulty.vendor.page_delay = 0.3
    faulty.faults.active["signin"] = Respond(502)
    assert proxy.get("/widget", EMAIL).status_code == 502
    wait_until(lambda: faulty.vendor.calls["page"] == 1)
    time.sleep(0.1)  # the page's answer has been taken in by now

    ready = proxy.client.get("/readyz")

    assert ready.status_code == 200
    assert any("circuit open" in why for why in ready.json()["degraded"].values())
    circuit = samples(proxy.client.get("/metrics").text)
    assert 2.0 in {v for (name, _), v in circuit.items() if name == "widget_proxy_circuit_state"}


@pytest.mark.parametrize(
    ("env", "status"),
    [({"METRICS_ALLOW": "10.0.0.0/8"}, 403), ({"METRICS_ENABLED": "false"}, 404)],
)
def test_metrics_access(make_proxy: Callable[..., Proxy], env: dict[str, str], status: int) -> None:
    assert make_proxy(**env).client.get("/metrics").status_code == status
