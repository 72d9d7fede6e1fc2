"""Origin policy: exact rules, no substrings, look-alikes refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
        ("https://shop.example.com/x://y", "is not an origin (scheme://host[:port], no path)"),
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
        # urlsplit drops tabs and line breaks inside a URL; a header holding one is refused.
        ("https://shop.exa\tmple.com", None),
        ("https://shop.example.com\n:8443", None),
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
