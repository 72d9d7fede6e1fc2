"""Trusted proxies: whose forwarded headers are believed, and what they are read as."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from widget_proxy.security import forwarded
from widget_proxy.security.forwarded import (
    LONGEST_ADDRESS,
    REMEMBERED,
    Address,
    TrustedProxies,
    address,
    header_list,
    parse_networks,
    too_broad,
)


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
        # A dual-stack listener's IPv4 peer: trusted, and its hops read the same way.
        ("::ffff:10.1.2.3", "::ffff:1.2.3.4", "1.2.3.4"),
        ("::ffff:10.1.2.3", "1.2.3.4, ::ffff:10.9.9.9", "1.2.3.4"),
        ("::ffff:203.0.113.5", "1.2.3.4", "203.0.113.5"),  # untrusted, known as IPv4
        # A hop with its port is its address: a new port is not a new client.
        ("10.1.2.3", "1.2.3.4:51000", "1.2.3.4"),
        ("10.1.2.3", "[2001:db8::1]:443, 10.0.0.7:80", "2001:db8::1"),
        # Junk a trusted hop wrote: the client is unknown, counted as the hop that wrote it.
        ("10.1.2.3", "1.2.3.4, unknown", "10.1.2.3"),
        ("10.1.2.3", "1.2.3.4, _hidden, 10.0.0.7", "10.0.0.7"),
        ("10.1.2.3", "1.2.3.4:port", "10.1.2.3"),
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


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("1.2.3.4", "1.2.3.4"),
        (" 2001:db8::1 ", "2001:db8::1"),
        ("::ffff:127.0.0.1", "127.0.0.1"),  # IPv4-mapped: the IPv4 address
        ("::ffff:7f00:1", "127.0.0.1"),
        ("[::ffff:1.2.3.4]:9", "1.2.3.4"),
        ("1.2.3.4:80", "1.2.3.4"),
        ("1.2.3.4:65535", "1.2.3.4"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("::1", "::1"),
        ("1.2.3.4:", None),
        ("1.2.3.4:x", None),
        ("1.2.3.4:123456", None),
        ("1.2.3.4:-1", None),
        ("[2001:db8::1", None),
        ("[2001:db8::1]80", None),
        ("[2001:db8::1]:", None),
        ("2001:db8::1:x", None),
        ("unknown", None),
        ("", None),
    ],
)
def test_an_address_is_read_in_one_form(text: str, found: str | None) -> None:
    ip = address(text)

    assert (None if ip is None else str(ip)) == found


@pytest.mark.parametrize(
    ("networks", "peer", "trusted"),
    [
        ("127.0.0.1/32", "::ffff:127.0.0.1", True),  # `serve --host ::`, reached over IPv4
        ("127.0.0.1/32", "::ffff:127.0.0.2", False),
        ("::ffff:127.0.0.1", "127.0.0.1", True),  # a mapped entry is the IPv4 one
        ("::ffff:10.0.0.0/104", "10.9.8.7", True),
        ("::/64", "::ffff:127.0.0.1", False),  # an IPv6 range holds no IPv4 peer
        ("::1", "::1", True),
        ("10.0.0.0/8", "10.0.0.1:80", True),
        ("10.0.0.0/8", "garbage", False),
    ],
)
def test_a_peer_is_matched_as_the_address_it_is(networks: str, peer: str, trusted: bool) -> None:
    proxies = TrustedProxies(parse_networks(networks))

    assert proxies.trusts(peer) is trusted
    assert proxies.peer({"client": (peer, 1)}) == (str(address(peer)) if address(peer) else peer)


@pytest.mark.parametrize(("networks", "anyone"), [("", False), ("10.0.0.0/8", True)])
def test_trusts_anyone_says_whether_any_peer_can_be_trusted(networks: str, anyone: bool) -> None:
    # The request log and admission ask no peer when it is False: it must never be
    # False where `trusts` could be True.
    proxies = TrustedProxies(parse_networks(networks))

    assert proxies.trusts_anyone is anyone
    assert proxies.trusts("10.0.0.1") is anyone


def test_a_dual_stack_peer_is_known_by_its_ipv4_address() -> None:
    assert ours().peer({"client": ("::ffff:203.0.113.5", 1)}) == "203.0.113.5"
    assert ours().peer({"client": ("2001:DB8::1", 1)}) == "2001:db8::1"


@pytest.mark.parametrize(
    ("raw", "networks"),
    [
        ("::ffff:0:0/96", ["0.0.0.0/0"]),
        ("::ffff:10.0.0.0/104", ["10.0.0.0/8"]),
        ("::ffff:127.0.0.1", ["127.0.0.1/32"]),
        ("::ffff:0:0/95", ["::fffe:0:0/95"]),  # wider than the mapped space: IPv6
        ("::/96", ["::/96"]),  # IPv4-compatible (not mapped): IPv6
    ],
)
def test_an_ipv4_mapped_range_is_the_ipv4_range(raw: str, networks: list[str]) -> None:
    assert [str(n) for n in parse_networks(raw)] == networks


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("0.0.0.0/0", "0.0.0.0/0 trusts at least a /1's worth of public IPv4 addresses"),
        ("0.0.0.0/1, 128.0.0.0/1", "0.0.0.0/1 128.0.0.0/1 trust at least a /1's worth"),
        ("::ffff:0:0/96", "0.0.0.0/0 trusts at least a /1's worth of public IPv4"),
        ("10.0.0.0/8 11.0.0.0/8 12.0.0.0/32", "11.0.0.0/8 12.0.0.0/32 trust at least a /8's"),
        ("11.0.0.0/6", "8.0.0.0/6 trusts at least a /7's"),  # less 10/8, private
        ("::/0", "::/0 trusts at least a /1's worth of public IPv6 addresses"),
        ("2000::/3", "2000::/3 trusts at least a /3's worth of public IPv6 addresses"),
        ("2001:db8::/24 2002::/32", "2001:d00::/24 2002::/32 trust at least a /24's"),
        ("fc00::/6", "fc00::/6 trusts at least a /8's worth of public IPv6"),  # less fc00::/7
    ],
)
def test_a_list_covering_too_much_of_the_internet_is_too_broad(raw: str, problem: str) -> None:
    reason = too_broad(parse_networks(raw))

    assert reason is not None
    assert reason.startswith(problem)
    assert "may cover a /" in reason
    assert reason.endswith("at most); name the proxies' own CIDRs")


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "127.0.0.0/8 ::1",  # METRICS_ALLOW's default
        "10.0.0.0/8 100.64.0.0/10 127.0.0.0/8 169.254.0.0/16 172.16.0.0/12 192.168.0.0/16",
        "::1 fc00::/7 fe80::/10",
        "11.0.0.0/8",  # a /8's worth exactly
        "11.0.0.0/8 10.0.0.0/8",
        "10.0.0.0/7",
        "2001:db8::/24",
        "2001:db8::/25 2001:d80::/25",
        "104.16.0.0/13 172.64.0.0/13 2a06:98c0::/29 2600:9000::/28",  # CDNs' ranges
    ],
)
def test_private_networks_and_a_providers_ranges_are_not_too_broad(raw: str) -> None:
    assert too_broad(parse_networks(raw)) is None


def test_what_a_proxy_list_remembers_of_addresses_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads: list[str] = []

    def counted(text: str) -> Address | None:
        reads.append(text)
        return address(text)

    monkeypatch.setattr(forwarded, "address", counted)
    proxies = TrustedProxies(parse_networks("10.0.0.0/8"))
    for n in range(REMEMBERED + 1):  # a flood of new clients, one past the bound
        proxies.trusts(f"192.0.{n // 256 % 256}.{n % 256}")
    assert 0 < len(proxies._read) <= REMEMBERED
    hop = "x" * 40_000  # client text in a forwarded hop: read, never kept
    assert proxies.address(hop) is None
    assert hop not in proxies._read
    padded = "10.1.2.3".rjust(LONGEST_ADDRESS)  # as long as a kept text may be
    assert proxies.trusts(padded)
    assert padded in proxies._read

    # Read once, then remembered as a fresh read says, the IPv4-mapped form included.
    reads.clear()
    assert proxies.trusts("::ffff:10.1.2.3")
    assert proxies.trusts("::ffff:10.1.2.3")
    assert proxies.peer({"client": ("::ffff:10.1.2.3", 5000)}) == "10.1.2.3"
    assert reads == ["::ffff:10.1.2.3"]
