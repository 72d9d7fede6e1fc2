"""Each default is declared once: a setting that configures a component defaults to
what the component itself does when it is built without it.

Read from the components' own signatures (and their value classes' fields), so a
default changed on either side without the other fails here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from tests.support import VALID
from widget_proxy.cache import open_store
from widget_proxy.cache.counts import WindowCounters
from widget_proxy.cache.pages import PageCache
from widget_proxy.cache.tokens import Backoff, JwtLifetime, TokenCache
from widget_proxy.ops.logs import log_config
from widget_proxy.options import options_of
from widget_proxy.providers.hissuno import HissunoSettings, HissunoTokens
from widget_proxy.providers.neuroon import NeuroonSettings
from widget_proxy.providers.neuroon.tokens import NeuroonTokens
from widget_proxy.routes import WidgetPage
from widget_proxy.security.headers import HeaderLimit
from widget_proxy.security.identity import HeaderIdentity, SessionReader
from widget_proxy.security.ratelimit import RateLimits
from widget_proxy.settings import Settings
from widget_proxy.upstream.breaker import BreakerPolicy
from widget_proxy.upstream.client import Limits, Retries, Timeouts


def default(component: Callable[..., Any], parameter: str) -> Any:
    """What `component` uses for `parameter` when it is not given."""
    found = inspect.signature(component).parameters[parameter].default
    assert found is not inspect.Parameter.empty, f"{component.__name__}({parameter}) has none"
    return found


# (Settings field, the component it configures, the component's parameter)
TIED: list[tuple[str, Callable[..., Any], str]] = [
    ("widget_color", WidgetPage, "default_color"),
    ("session_cookie", SessionReader, "cookie"),
    ("session_max_age", SessionReader, "max_age"),
    ("session_email_key", SessionReader, "email_key"),
    ("session_user_id_key", SessionReader, "user_id_key"),
    ("session_metadata_keys", SessionReader, "metadata_keys"),
    ("max_header_bytes", HeaderLimit, "max_bytes"),
    ("max_request_target_bytes", HeaderLimit, "max_target_bytes"),
    ("rate_limit_per_minute", RateLimits, "per_user"),
    ("rate_limit_ip_per_minute", RateLimits, "per_ip"),
    ("rate_limit_sync_interval", WindowCounters, "sync_interval"),
    ("cache_max_entries", WindowCounters, "max_keys"),
    ("cache_max_entries", open_store, "max_entries"),
    ("widget_sandbox", WidgetPage, "sandbox"),
    ("upstream_connect_timeout", Timeouts, "connect"),
    ("upstream_read_timeout", Timeouts, "read"),
    ("upstream_pool_timeout", Timeouts, "pool"),
    ("upstream_max_connections", Limits, "max_connections"),
    ("upstream_max_bytes", Limits, "max_bytes"),
    ("upstream_deadline", Retries, "deadline"),
    ("upstream_retries", Retries, "retries"),
    ("breaker_failures", BreakerPolicy, "failures"),
    ("breaker_cooldown", BreakerPolicy, "cooldown"),
    ("breaker_cooldown", Backoff, "limit"),  # a shared token waits no longer than a circuit
    ("token_refresh_margin", JwtLifetime, "margin"),
    ("token_refresh_margin", TokenCache, "margin"),
    ("token_max_ttl", JwtLifetime, "max_ttl"),
    ("token_default_ttl", JwtLifetime, "default_ttl"),
    ("page_cache_ttl", PageCache, "ttl"),
    ("page_stale_if_error", PageCache, "stale_if_error"),
    ("log_level", log_config, "level"),
    ("log_emails", log_config, "log_emails"),
]


@pytest.mark.parametrize(
    ("field", "component", "parameter"),
    TIED,
    ids=[f"{field}-{component.__name__}.{parameter}" for field, component, parameter in TIED],
)
def test_a_setting_defaults_to_its_components_default(
    field: str, component: Callable[..., Any], parameter: str
) -> None:
    settings = Settings.from_env(VALID)  # nothing of these set

    assert getattr(settings, field) == default(component, parameter)


def test_the_identity_header_defaults_to_the_components_header() -> None:
    # The component compares lower-cased (header names are case-insensitive).
    settings = Settings.from_env(VALID)

    assert settings.identity_header.lower() == default(HeaderIdentity, "header").lower()


# A vendor's group: (its settings class, field, the component, the parameter)
VENDOR_TIED: list[tuple[type, str, Callable[..., Any], str]] = [
    (HissunoSettings, "token_ttl", HissunoTokens, "ttl"),
    (NeuroonSettings, "rotate_after", NeuroonTokens, "rotate_after"),
]


@pytest.mark.parametrize(("group", "field", "component", "parameter"), VENDOR_TIED)
def test_a_vendor_setting_defaults_to_its_components_default(
    group: type, field: str, component: Callable[..., Any], parameter: str
) -> None:
    (opt,) = [opt for opt in options_of(group) if opt.field == field]
    assert opt.default is not None

    assert opt.parse(opt.default) == default(component, parameter)
