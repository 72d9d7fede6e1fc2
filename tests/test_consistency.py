"""What no single setting shows: settings that contradict each other, or the vendor's needs."""

from __future__ import annotations

import itertools

import pytest

from tests.support import VALID
from tests.support.vendors import HISSUNO, NEUROON, SDK, problems
from widget_proxy.options import Option, options_of
from widget_proxy.providers import PROVIDERS
from widget_proxy.settings import Settings, SettingsError


@pytest.mark.parametrize(
    ("env", "allowed"),
    [
        (NEUROON, True),  # one shop token: nobody to sign in
        ({**NEUROON, "ALLOW_ANONYMOUS": "false"}, False),
        (HISSUNO, False),  # per-user by default, tokenless anonymous when asked
        ({**HISSUNO, "ALLOW_ANONYMOUS": "true"}, True),
        (VALID, False),
        (SDK, False),
    ],
)
def test_allow_anonymous_defaults_by_vendor(env: dict[str, str], allowed: bool) -> None:
    assert Settings.from_env(env).allow_anonymous is allowed


@pytest.mark.parametrize("env", [VALID, SDK], ids=["returningai", "returningai-sdk"])
def test_a_per_user_vendor_refuses_anonymous_visitors(env: dict[str, str]) -> None:
    found = problems({**env, "ALLOW_ANONYMOUS": "true"})

    assert len(found) == 1
    assert found[0].startswith(f"ALLOW_ANONYMOUS: {env.get('TOKEN_PROVIDER', 'returningai')}")


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"IDENTITY_SOURCE": "header"}, "IDENTITY_PROXIES: IDENTITY_SOURCE=header needs"),
        ({"IDENTITY_SOURCE": "header", "TRUSTED_PROXIES": "127.0.0.1"}, "IDENTITY_PROXIES"),
        ({"TRUSTED_PROXIES": "0.0.0.0/0"}, "TRUSTED_PROXIES: 0.0.0.0/0 trusts at least a /1"),
        ({"IDENTITY_PROXIES": "::/0"}, "IDENTITY_PROXIES: ::/0 trusts at least a /1"),
        ({"METRICS_ALLOW": "0.0.0.0/0"}, "METRICS_ALLOW: 0.0.0.0/0 trusts at least a /1"),
        # "Everyone" in pieces, or IPv4-mapped: every trust list counts the union.
        ({"TRUSTED_PROXIES": "0.0.0.0/1 128.0.0.0/1"}, "0.0.0.0/1 128.0.0.0/1 trust at least"),
        ({"IDENTITY_PROXIES": "::ffff:0:0/96"}, "IDENTITY_PROXIES: 0.0.0.0/0 trusts at least"),
        ({"METRICS_ALLOW": "127.0.0.1 2000::/3"}, "METRICS_ALLOW: 2000::/3 trusts at least a /3"),
        ({"TRUSTED_PROXIES": "11.0.0.0/8 12.0.0.0/16"}, "TRUSTED_PROXIES: 11.0.0.0/8 12.0.0.0/16"),
        ({"WIDGET_BASE_URL": "http://widgets.example.com"}, "WIDGET_BASE_URL: .* plain http"),
        ({"WIDGET_API_KEY": "k\u00e9y"}, "WIDGET_API_KEY: must be visible ASCII"),
    ],
)
def test_settings_refuse_unsafe_combinations(env: dict[str, str], problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        Settings.from_env({**VALID, **env})


@pytest.mark.parametrize(
    "networks",
    [
        "10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 127.0.0.0/8 fc00::/7 ::1",  # all private
        "11.0.0.0/8",  # a /8's worth of the internet, the most
        "2a06:98c0::/29 2400:cb00::/32 2600:9000::/28",  # CDNs' published IPv6 ranges
        "::ffff:127.0.0.1 ::ffff:10.0.0.0/104",
    ],
)
def test_trust_lists_may_name_private_networks_and_a_providers_ranges(networks: str) -> None:
    env = {"TRUSTED_PROXIES": networks, "IDENTITY_PROXIES": networks, "METRICS_ALLOW": networks}

    settings = Settings.from_env({**VALID, **env})

    assert settings.trusted_proxies == settings.identity_proxies == settings.metrics_allow


def test_plain_http_vendor_urls_only_on_loopback_or_when_allowed() -> None:
    remote = {**VALID, "WIDGET_BASE_URL": "http://widgets.example.com"}
    with pytest.raises(SettingsError, match=r"WIDGET_BASE_URL: .* plain http beyond loopback"):
        Settings.from_env(remote)

    allowed = Settings.from_env({**remote, "UPSTREAM_ALLOW_HTTP": "true"})
    assert allowed.vendor.base_url == "http://widgets.example.com"
    for local in ("http://127.0.0.1:8081", "http://localhost:8081", "http://[::1]:8081"):
        assert Settings.from_env({**VALID, "WIDGET_BASE_URL": local}).vendor.base_url == local


# Each vendor's least configuration, by TOKEN_PROVIDER.
LEAST = {env.get("TOKEN_PROVIDER", "returningai"): env for env in (VALID, NEUROON, HISSUNO, SDK)}
# Plain http as an operator may write it: the scheme's case is nobody's business.
SPELLINGS = (
    "http://far.example",
    "HTTP://far.example",
    "Http://far.example/",
    " hTTp://far.example ",
)


@pytest.mark.parametrize("vendor", sorted(PROVIDERS))
def test_plain_http_is_refused_in_every_spelling_in_every_url_setting(vendor: str) -> None:
    """Every vendor option that takes a URL (found by trying: one that takes an https
    URL but no ftp one) refuses plain http beyond loopback however the scheme is
    written, and keeps it in one spelling when UPSTREAM_ALLOW_HTTP accepts it."""
    env = LEAST[vendor]
    urls = [
        opt.name
        for opt in _options(vendor)
        if _accepts(env, opt.name, "https://far.example/x.js")
        and not _accepts(env, opt.name, "ftp://far.example/x.js")
    ]
    assert urls  # every vendor has one at least
    for name, spelling in itertools.product(urls, SPELLINGS):
        assert any(
            p.startswith(f"{name}: http://far.example is plain http beyond loopback")
            for p in problems({**env, name: spelling})
        ), (name, spelling)
        allowed = Settings.from_env({**env, name: spelling, "UPSTREAM_ALLOW_HTTP": "true"})
        assert "http://far.example" in [getattr(allowed.vendor, o.field) for o in _options(vendor)]


def _accepts(env: dict[str, str], name: str, value: str) -> bool:
    try:
        Settings.from_env({**env, name: value})
    except SettingsError:
        return False
    return True


def _options(vendor: str) -> tuple[Option, ...]:
    return options_of(PROVIDERS[vendor].settings, vendor)
