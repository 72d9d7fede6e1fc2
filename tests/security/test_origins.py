"""Origin policy and trusted proxies: exact rules, no substrings, look-alikes refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers

from widget_proxy.security.forwarded import TrustedProxies, header_list, parse_networks
from widget_proxy.security.origins import Origin, OriginPolicy, OriginRule, parse_origin

ENTRIES = "https://shop.example.com *.example.org, http://*.dev.test:8080 localhost 127.0.0.1"
POLICY = OriginPolicy(tuple(OriginRule.parse(e) for e in ENTRIES.replace(",", " ").split()))


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://shop.example.com", True),
        ("HTTPS://SHOP.EXAMPLE.COM", True),
        ("https://shop.example.com:443", True),
        ("https://shop.example.com:8443", False),
        ("http://shop.example.com", False),
        ("https://example.com", False),
        ("https://a.shop.example.com", False),
        ("https://shop.example.com.evil.io", False),
        ("https://evilshop.example.com", False),
        ("https://a.example.org", True),
        ("https://a.b.c.example.org", True),
        ("https://example.org", False),  # the wildcard is for subdomains only
        ("https://evilexample.org", False),
        ("https://example.org.evil.io", False),
        ("http://a.example.org", False),  # a bare wildcard is https only
        ("http://a.dev.test:8080", True),
        ("http://a.dev.test", False),
        ("http://localhost:3000", True),
        ("https://localhost", True),
        ("http://app.localhost:5173", True),
        ("http://localhost.evil.io", False),
        ("http://evillocalhost", False),
        ("http://127.0.0.1:8000", True),
        ("http://1.127.0.0.1", False),
        ("http://127.0.0.10", False),
        ("null", False),
        ("", False),
        ("https://shop.example.com/path", False),
        ("https://user@shop.example.com", False),
        ("javascript:alert(1)", False),
        ("https://shop.example.com\r\n", True),  # surrounding whitespace is trimmed
        ("https://shop.exa mple.com", False),
    ],
)
def test_matching(origin: str, allowed: bool) -> None:
    assert POLICY.allows(parse_origin(origin)) is allowed


def test_csp_sources() -> None:
    assert POLICY.csp_sources == (
        "https://shop.example.com",
        "https://*.example.org",
        "http://*.dev.test:8080",
        "localhost:*",
        "*.localhost:*",
        "127.0.0.1:*",
    )


@pytest.mark.parametrize(
    "entry",
    ["ftp://x.example", "*.com", "https://*.com", "https://a.example/path", "not a host", "*."],
)
def test_bad_entries(entry: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message is checked in settings tests
        OriginRule.parse(entry)


labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@given(prefix=labels, suffix=labels, glue=st.sampled_from(["", "-", "."]))
def test_look_alikes_never_match(prefix: str, suffix: str, glue: str) -> None:
    """Hosts built around the allowed names, but not under them, are refused."""
    for host in (
        f"{prefix}example.org",  # no dot before the domain
        f"example.org{glue}{suffix}",  # the domain as a prefix
        f"{prefix}{glue}example.org.{suffix}",
        f"shop.example.com{glue}{suffix}",
        f"{prefix}shop.example.com",
    ):
        origin = parse_origin(f"https://{host}")
        if origin is None:
            continue
        legit = host.endswith(".example.org") or host == "shop.example.com"
        assert POLICY.allows(origin) is legit, host


@given(sub=st.lists(labels, min_size=1, max_size=4))
def test_every_depth_of_subdomain_matches_the_wildcard(sub: list[str]) -> None:
    assert POLICY.allows(parse_origin(f"https://{'.'.join(sub)}.example.org"))


def test_origin_normalisation() -> None:
    assert parse_origin("HTTPS://Shop.Example.COM:443") == Origin("https", "shop.example.com", 443)
    assert str(Origin("http", "localhost", 8000)) == "http://localhost:8000"
    assert str(Origin("https", "a.example", 443)) == "https://a.example"


PROXIES = TrustedProxies(parse_networks("10.0.0.0/8, 192.168.1.1"))


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

    assert PROXIES.client_ip(scope, headers) == client


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

    assert PROXIES.client_ip(scope, headers) == client


def test_public_origin_is_the_last_hops_across_lines() -> None:
    headers = lines(
        ("host", "internal:8000"),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", "evil.example"),  # the client's own line
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "shop.io"),  # our proxy's
    )

    assert PROXIES.public_origin({"scheme": "http", "client": ("10.0.0.1", 1)}, headers) == (
        "https://shop.io"
    )


def test_header_list_joins_lines_in_order() -> None:
    headers = lines(("x-a", "1, 2"), ("x-b", "z"), ("x-a", "3"))

    assert [item.strip() for item in header_list(headers, "x-a")] == ["1", "2", "3"]
    assert header_list(headers, "x-missing") == [""]
    assert header_list({"x-a": "1,2"}, "x-a") == ["1", "2"]


def test_public_origin_follows_a_trusted_proxy_only() -> None:
    headers = {"host": "internal:8000", "x-forwarded-proto": "https", "x-forwarded-host": "shop.io"}

    trusted = PROXIES.public_origin({"scheme": "http", "client": ("10.0.0.1", 1)}, headers)
    stranger = PROXIES.public_origin({"scheme": "http", "client": ("1.2.3.4", 1)}, headers)

    assert trusted == "https://shop.io"
    assert stranger == "http://internal:8000"


def test_bad_networks() -> None:
    with pytest.raises(ValueError, match="not an IP address or CIDR"):
        parse_networks("10.0.0.0/8 proxy.local")


# Each ALLOWED_ORIGINS entry and exactly the rule it becomes.
RULES = [
    ("https://shop.example.com", OriginRule("exact", "https", "shop.example.com", 443)),
    ("HTTP://Shop.Example.com:8080", OriginRule("exact", "http", "shop.example.com", 8080)),
    ("http://shop.example.com/", OriginRule("exact", "http", "shop.example.com", 80)),
    ("*.example.org", OriginRule("wildcard", "https", "example.org", 443)),
    ("https://*.example.org", OriginRule("wildcard", "https", "example.org", 443)),
    ("http://*.dev.test", OriginRule("wildcard", "http", "dev.test", 80)),
    ("https://*.dev.test:8443", OriginRule("wildcard", "https", "dev.test", 8443)),
    ("localhost", OriginRule("host", None, "localhost", None)),
    ("127.0.0.1", OriginRule("host", None, "127.0.0.1", None)),
    ("Dev.Local", OriginRule("host", None, "dev.local", None)),
]


@pytest.mark.parametrize(("entry", "rule"), RULES)
def test_each_entry_becomes_exactly_its_rule(entry: str, rule: OriginRule) -> None:
    assert OriginRule.parse(entry) == rule


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("ftp://shop.example.com", "only http and https origins can be allowed"),
        ("https://*.example.org:port", "has a bad port"),
        ("https://*.com", "a wildcard needs a domain of two labels or more"),
        ("*.com", "a wildcard needs a domain of two labels or more"),
        ("https://shop.example.com/path", "is not an origin (scheme://host[:port], no path)"),
        ("not a host", "is not a host, an origin or a *.domain wildcard"),
    ],
)
def test_a_bad_entry_is_named_with_its_reason(entry: str, reason: str) -> None:
    with pytest.raises(ValueError, match=r".+") as caught:
        OriginRule.parse(entry)

    assert repr(entry) in str(caught.value)
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    ("value", "origin"),
    [
        ("https://shop.example.com", Origin("https", "shop.example.com", 443)),
        ("https://shop.example.com/", Origin("https", "shop.example.com", 443)),
        ("  http://Shop.Example.com:8080  ", Origin("http", "shop.example.com", 8080)),
        ("http://[::1]:8000", Origin("http", "::1", 8000)),
        ("null", None),
        ("NULL", None),
        ("Null", None),
        ("", None),
        ("https://shop .example.com", None),
        ("https://shop.example.com/path", None),
        ("https://shop.example.com/?q=1", None),
        ("https://shop.example.com/#x", None),
        ("https://user@shop.example.com", None),
        ("ftp://shop.example.com", None),
        ("https://", None),
        ("https://-bad-.example.com", None),
        ("https://shop.example.com:99999", None),
    ],
)
def test_origins_normalise_or_are_refused(value: str, origin: Origin | None) -> None:
    assert parse_origin(value) == origin


def test_a_refused_origin_matches_no_rule_even_a_catch_all_looking_one() -> None:
    policy = OriginPolicy((OriginRule.parse("localhost"), OriginRule.parse("*.example.org")))

    assert policy.allows(parse_origin("http://localhost:3000"))
    assert not policy.allows(parse_origin("null"))
    assert not policy.allows(None)
