"""CACHE_URL's Sentinel and Cluster forms (`cache/topology.py`): accepted, or refused with
a reason. (That the password never shows: tests/cache/test_cache.py.)"""

from __future__ import annotations

import pytest

from tests.support import VALID
from widget_proxy.cache.topology import Topology, topology
from widget_proxy.settings import Settings, SettingsError


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "redis+sentinel://10.0.0.1:26379,10.0.0.2:26380/mymaster/2",
            Topology("sentinel", (("10.0.0.1", 26379), ("10.0.0.2", 26380)), "mymaster", 2),
        ),
        (
            "rediss+sentinel://app:p%40ss@s1,[::1]:26380/cache?ssl_ca_certs=/ca.pem",
            Topology(
                "sentinel",
                (("s1", 26379), ("::1", 26380)),
                "cache",
                0,
                "app",
                "p@ss",
                True,
                (("ssl_ca_certs", "/ca.pem"),),
            ),
        ),
        (
            "redis+cluster://:pw@n1:7000,n2:7001,n3:7002",
            Topology("cluster", (("n1", 7000), ("n2", 7001), ("n3", 7002)), password="pw"),
        ),
        ("rediss+cluster://n1:7000/", Topology("cluster", (("n1", 7000),), tls=True)),
        (
            "rediss+cluster://:pw@n1:7000,n2:7001?ssl_ca_certs=/etc/redis/ca.crt&ssl_cert_reqs=required",
            Topology(
                "cluster",
                (("n1", 7000), ("n2", 7001)),
                password="pw",
                tls=True,
                options=(("ssl_ca_certs", "/etc/redis/ca.crt"), ("ssl_cert_reqs", "required")),
            ),
        ),
        (
            "rediss+sentinel://s1:26379/m/0?ssl_ca_certs=/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/k.pem",
            Topology(
                "sentinel",
                (("s1", 26379),),
                "m",
                tls=True,
                options=(
                    ("ssl_ca_certs", "/ca.pem"),
                    ("ssl_certfile", "/c.pem"),
                    ("ssl_keyfile", "/k.pem"),
                ),
            ),
        ),
        ("redis://127.0.0.1:6379/0", Topology("single")),
    ],
)
def test_the_forms_are_read(url: str, expected: Topology) -> None:
    assert topology(url) == expected
    assert Settings.from_env({**VALID, "CACHE_URL": url}).cache_url.reveal() == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel:///mymaster", "at least one host:port"),
        ("redis+cluster://", "at least one host:port"),
        ("redis+sentinel://h:26379", "service name"),
        ("redis+sentinel://h:26379/", "service name"),
        ("redis+sentinel://h:port/m", "bad port"),
        ("redis+cluster://h:7000,h:70000", "bad port"),
        ("redis+cluster://h:7000,:7001", "not host:port"),
        ("redis+sentinel://h:1/m/x", "database number"),
        ("redis+cluster://h:7000/1", "database 0 only"),
        ("redis+cluster://h:7000?sentinel_password=x", "unknown option"),
        ("rediss+cluster://h:7000?ssl_ca_cert=/ca.pem", "unknown option ssl_ca_cert"),
        ("redis+memcached://h:1", "redis+sentinel://"),
    ],
)
def test_malformed_forms_name_cache_url(url: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**VALID, "CACHE_URL": url})

    mine = [p for p in caught.value.problems if p.startswith("CACHE_URL:")]
    assert len(mine) == 1
    assert message in mine[0]
