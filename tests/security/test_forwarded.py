"""Trusted proxies: whose forwarded headers are believed, and what they are read as."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from widget_proxy.security.forwarded import TrustedProxies, header_list, parse_networks


def ours() -> TrustedProxies:
    """Built per test: a mutant of the constructor must meet the tests, not an import."""
    return TrustedProxies(parse_networks("10.0.0.0/8, 192.168.1.1"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.5", "", "203.0.113.5"),
        ("203.0.113.5", "1.2.3.4", "203.0.113.5"),  # an untrusted peer's header is ignored
        ("10.1.2.3", "1.2.3.4", "1.2.3.4"),
        ("10.1.2.3", "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # the client can't prepend a fake
        ("10.1.2.3", "1.2.3.4, 10.9.9.9, 192.168.1.1", "1.2.3.4"),  # skip trusted hops
        ("10.1.2.3", "10.0.0.7", "10.0.0.7"),  # all trusted: the leftmost
        ("10.1.2.3", "", "10.1.2.3"),
        ("10.1.2.3", "garbage, 1.2.3.4", "1.2.3.4"),
    ],
)
def test_client_ip(peer: str, forwarded: str, client: str) -> None:
    scope = {"type": "http", "client": (peer, 1234)}
    headers = {"x-forwarded-for": forwarded} if forwarded else {}

    assert ours().client_ip(scope, headers) == client


def lines(*items: tuple[str, str]) -> Headers:
    """Headers as a server receives them: one entry per line, repeats kept."""
    return Headers(raw=[(k.encode(), v.encode()) for k, v in items])


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        (["6.6.6.6", "1.2.3.4"], "1.2.3.4"),  # a proxy that adds its hop as a line
        (["6.6.6.6, 7.7.7.7", "1.2.3.4, 10.9.9.9"], "1.2.3.4"),
        (["1.2.3.4", "10.9.9.9"], "1.2.3.4"),  # a trusted hop on a line of its own
        (["1.2.3.4", ""], "1.2.3.4"),
        (["", ""], "10.1.2.3"),
    ],
)
def test_client_ip_reads_every_line_of_x_forwarded_for(forwarded: list[str], client: str) -> None:
    scope = {"type": "http", "client": ("10.1.2.3", 1234)}
    headers = lines(*[("x-forwarded-for", line) for line in forwarded])

    assert ours().client_ip(scope, headers) == client


def test_public_origin_is_the_last_hops_across_lines() -> None:
    headers = lines(
        ("host", "internal:8000"),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", "evil.example"),  # the client's own line
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "shop.io"),  # our proxy's
    )

    assert ours().public_origin({"scheme": "http", "client": ("10.0.0.1", 1)}, headers) == (
        "https://shop.io"
    )


def test_header_list_joins_lines_in_order() -> None:
    headers = lines(("x-a", "1, 2"), ("x-b", "z"), ("x-a", "3"))

    assert [item.strip() for item in header_list(headers, "x-a")] == ["1", "2", "3"]
    assert header_list(headers, "x-missing") == [""]
    assert header_list({"x-a": "1,2"}, "x-a") == ["1", "2"]


def test_public_origin_follows_a_trusted_proxy_only() -> None:
    headers = {"host": "internal:8000", "x-forwarded-proto": "https", "x-forwarded-host": "shop.io"}

    trusted = ours().public_origin({"scheme": "http", "client": ("10.0.0.1", 1)}, headers)
    stranger = ours().public_origin({"scheme": "http", "client": ("1.2.3.4", 1)}, headers)

    assert trusted == "https://shop.io"
    assert stranger == "http://internal:8000"


@pytest.mark.parametrize(
    ("raw", "networks"),
    [
        ("10.0.0.0/8, 192.168.1.1", ["10.0.0.0/8", "192.168.1.1/32"]),
        ("10.1.2.3/8", ["10.0.0.0/8"]),  # host bits set: the network they are in
        ("fd00::/8,,2001:db8::1", ["fd00::/8", "2001:db8::1/128"]),
        (" \t", []),
    ],
)
def test_networks_are_read_from_spaces_or_commas(raw: str, networks: list[str]) -> None:
    assert [str(n) for n in parse_networks(raw)] == networks


def test_a_bad_network_is_named() -> None:
    with pytest.raises(ValueError, match=r"^'proxy\.local' is not an IP address or CIDR$"):
        parse_networks("10.0.0.0/8 proxy.local")


@pytest.mark.parametrize(
    ("networks", "scope", "client"),
    [
        ((), {"client": ("10.1.2.3", 1)}, "10.1.2.3"),  # no proxies: no header believed
        (None, {}, ""),  # no peer (a Unix socket): nothing to trust
        (None, {"client": None}, ""),
        (None, {"client": ("unix:/run/proxy.sock", 1)}, "unix:/run/proxy.sock"),
        (None, {"client": ("10.1.2.3", 1)}, "1.2.3.4"),
    ],
)
def test_only_a_trusted_peers_forwarded_headers_count(
    networks: tuple[()] | None, scope: dict[str, object], client: str
) -> None:
    proxies = ours() if networks is None else TrustedProxies(networks)
    headers = {"x-forwarded-for": "1.2.3.4", "x-forwarded-proto": "https", "host": "in:1"}

    assert proxies.client_ip(scope, headers) == client
    trusted = client == "1.2.3.4"
    assert proxies.public_origin(scope, headers) == ("https://in:1" if trusted else "http://in:1")


@pytest.mark.parametrize(
    ("scope", "headers", "origin"),
    [
        ({"scheme": "https"}, {"host": "Shop.IO:8443"}, "https://shop.io:8443"),
        ({}, {"host": "shop.io"}, "http://shop.io"),  # a scope without a scheme
        ({"scheme": "http"}, {}, "http://"),  # no Host at all
        (
            {"scheme": "http", "client": ("10.0.0.1", 1)},
            {"host": "in:1", "x-forwarded-proto": "HTTPS", "x-forwarded-host": " Shop.IO "},
            "https://shop.io",
        ),
        (  # an empty forwarded value keeps what the connection says
            {"scheme": "https", "client": ("10.0.0.1", 1)},
            {"host": "in:1", "x-forwarded-proto": " ", "x-forwarded-host": ""},
            "https://in:1",
        ),
    ],
)
def test_public_origin(scope: dict[str, object], headers: dict[str, str], origin: str) -> None:
    assert ours().public_origin(scope, headers) == origin
