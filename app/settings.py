"""Settings: read once at start-up from the environment (and `.env`), validated as a
whole, then passed down as one frozen object.

Each setting is declared once, on its field (`options.option`). The core settings are
below; each vendor's own settings are a group in its folder (`providers/*/settings.py`),
nested as `Settings.vendor` for the chosen `TOKEN_PROVIDER`. Only `create_app` and
the command line read a `Settings`; every component gets keyword arguments.

(Over 300 lines because it is the table of the core settings, one field each.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values

from .cache import url_secrets
from .delivery.page import Color
from .errors import SettingsError
from .options import (
    Option,
    option,
    options_of,
    parse_options,
    secrets_in,
    settings_group,
)
from .options import parsers as p
from .providers import DEFAULT_PROVIDER, PROVIDERS, Provider, VendorSettings
from .secret import Secret
from .security.forwarded import Network
from .security.origins import OriginPolicy, OriginRule

__all__ = ["Option", "Secret", "Settings", "SettingsError", "all_options", "read_environ"]


@settings_group
class Settings:
    token_provider: str = option(
        "TOKEN_PROVIDER",
        DEFAULT_PROVIDER,
        f"Which vendor's tokens this proxy serves: {', '.join(PROVIDERS)}",
        p.choice(*PROVIDERS),
    )
    widget_color: Color = option(
        "WIDGET_COLOR", "light", "Default `color` query value: light or dark", p.color
    )
    session_secret: Secret = option(
        "SESSION_SECRET",
        None,
        "Secret that signs the session cookie; at least 32 characters",
        p.session_secret,
    )
    session_cookie: str = option("SESSION_COOKIE", "session", "Session cookie name", p.cookie_name)
    session_email_key: tuple[str, ...] = option(
        "SESSION_EMAIL_KEY",
        "email",
        "Where the email sits in the session; dotted paths such as user.email allowed",
        p.dotted_path,
    )
    session_max_age: int = option(
        "SESSION_MAX_AGE",
        "1209600",
        "Oldest session cookie accepted, in seconds (Starlette's default, 14 days)",
        p.positive(int),
    )
    session_https_only: bool = option(
        "SESSION_HTTPS_ONLY",
        "true",
        "Mark the session cookie Secure (set false only for plain-http development)",
        p.flag,
    )
    session_same_site: Literal["lax", "strict", "none"] = option(
        "SESSION_SAME_SITE",
        "lax",
        "SameSite of the session cookie: lax, strict or none (none needs SESSION_HTTPS_ONLY)",
        p.choice("lax", "strict", "none"),
    )
    session_user_id_key: tuple[str, ...] = option(
        "SESSION_USER_ID_KEY",
        "",
        "Where the user id sits in the session, for vendors that take one; dotted paths allowed",
        p.optional(p.dotted_path, empty=()),
        shown="the email",
    )
    session_metadata_keys: tuple[tuple[str, ...], ...] = option(
        "SESSION_METADATA_KEYS",
        "",
        "Session keys passed to the vendor as user metadata, comma-separated, e.g. name,email",
        p.key_list,
    )
    identity_source: Literal["session", "header"] = option(
        "IDENTITY_SOURCE",
        "session",
        "Where the user's email comes from: session (the cookie) or header (a trusted proxy)",
        p.choice("session", "header"),
    )
    identity_header: str = option(
        "IDENTITY_HEADER",
        "X-Auth-Request-Email",
        "With IDENTITY_SOURCE=header: the header a trusted proxy sets (oauth2-proxy's default)",
        p.header_name,
    )
    identity_proxies: tuple[Network, ...] = option(
        "IDENTITY_PROXIES",
        "",
        "With IDENTITY_SOURCE=header: CIDRs of the proxies that set IDENTITY_HEADER"
        " (e.g. oauth2-proxy, or the nginx that asks it); required then",
        p.networks,
    )
    trusted_proxies: tuple[Network, ...] = option(
        "TRUSTED_PROXIES",
        "",
        "CIDRs of reverse proxies whose forwarded headers are believed; default none",
        p.networks,
    )
    max_header_bytes: int = option(
        "MAX_HEADER_BYTES",
        "32768",
        "Largest request header block accepted, in bytes (what nginx allows by default);"
        " larger is a 431",
        p.positive(int),
    )
    rate_limit_per_minute: int = option(
        "RATE_LIMIT_PER_MINUTE",
        "60",
        "Widget and token requests a user may make per minute",
        p.positive(int),
    )
    rate_limit_ip_per_minute: int = option(
        "RATE_LIMIT_IP_PER_MINUTE",
        "120",
        "Widget and token requests one client IP may make per minute",
        p.positive(int),
    )
    allow_anonymous: bool | None = option(
        "ALLOW_ANONYMOUS",
        "",
        "Serve the widget to visitors who are not signed in (only for a vendor with an"
        " anonymous mode: one shop token, or a widget without a token)",
        p.optional(p.flag, empty=None),
        shown="`true` for `neuroon`, else `false`",
    )
    rate_limit_sync_interval: float = option(
        "RATE_LIMIT_SYNC_INTERVAL",
        "1",
        "With Redis: seconds between each process's batched sync of its rate counts (the"
        " overshoot bound grows with it)",
        p.positive(float),
    )
    login_url: str | None = option(
        "LOGIN_URL",
        "",
        "Where an anonymous browser is sent (with ?next=); if unset, a 401 page",
        p.login_url,
    )
    allowed_origins: tuple[OriginRule, ...] = option(
        "ALLOWED_ORIGINS",
        "",
        "Browser origins that may call the proxy and frame its pages: exact origins,"
        " *.domain wildcards (https), or bare hosts for development; space or comma separated",
        p.allowed_origins,
    )
    widget_sandbox: bool = option(
        "WIDGET_SANDBOX",
        "false",
        "Serve the widget page in a CSP sandbox: its scripts run, but not as your site's origin",
        p.flag,
    )
    frame_ancestors: tuple[str, ...] = option(
        "FRAME_ANCESTORS",
        "",
        "CSP frame-ancestors sources for the widget page, space-separated",
        p.frame_ancestors,
        shown="`'self'` plus `ALLOWED_ORIGINS`",
    )
    upstream_allow_http: bool = option(
        "UPSTREAM_ALLOW_HTTP",
        "false",
        "Accept plain http:// vendor URLs beyond loopback (keys and tokens travel in clear)",
        p.flag,
    )
    upstream_connect_timeout: float = option(
        "UPSTREAM_CONNECT_TIMEOUT",
        "2",
        "Seconds to open a connection to the upstream",
        p.positive(float),
    )
    upstream_read_timeout: float = option(
        "UPSTREAM_READ_TIMEOUT", "5", "Seconds to wait for each read from the upstream",
        p.positive(float),
    )  # fmt: skip
    upstream_pool_timeout: float = option(
        "UPSTREAM_POOL_TIMEOUT", "2", "Seconds to wait for a free connection in the pool",
        p.positive(float),
    )  # fmt: skip
    upstream_max_connections: int = option(
        "UPSTREAM_MAX_CONNECTIONS", "100", "Connections to the upstream kept open at most",
        p.positive(int),
    )  # fmt: skip
    upstream_max_bytes: int = option(
        "UPSTREAM_MAX_BYTES", "2097152", "Largest upstream body read, in bytes; larger is a 502",
        p.positive(int),
    )  # fmt: skip
    upstream_deadline: float = option(
        "UPSTREAM_DEADLINE",
        "8",
        "Seconds one page request may spend on the upstream, retries included",
        p.positive(float),
    )
    upstream_retries: int = option(
        "UPSTREAM_RETRIES",
        "2",
        "Retries after a connection error, timeout, 502, 503 or 504, within the deadline",
        p.not_negative(int),
    )
    breaker_failures: int = option(
        "BREAKER_FAILURES", "5", "Consecutive upstream failures that open the circuit",
        p.positive(int),
    )  # fmt: skip
    breaker_cooldown: float = option(
        "BREAKER_COOLDOWN",
        "30",
        "Seconds an open circuit refuses calls before one probe is let through",
        p.positive(float),
    )
    shutdown_timeout: int = option(
        "SHUTDOWN_TIMEOUT", "10", "Seconds requests in flight may take to finish after SIGTERM",
        p.positive(int),
    )  # fmt: skip
    cache_url: Secret = option(
        "CACHE_URL",
        "memory://",
        "Where tokens and pages are cached: memory:// (one process), redis://host:port/db,"
        " redis+sentinel://host:port[,host:port…]/service[/db] (the master a Sentinel names)"
        " or redis+cluster://host:port[,host:port…] (rediss+… for TLS)",
        p.cache_url,
    )
    cache_max_entries: int = option(
        "CACHE_MAX_ENTRIES",
        "100000",
        "Entries kept in each process's memory cache; least recently used go first",
        p.positive(int),
    )
    token_refresh_margin: float = option(
        "TOKEN_REFRESH_MARGIN",
        "60",
        "Seconds before a token's exp at which it is no longer served",
        p.not_negative(float),
    )
    token_max_ttl: float = option(
        "TOKEN_MAX_TTL",
        "3600",
        "Longest a token is cached, in seconds, whatever its exp says",
        p.positive(float),
    )
    token_default_ttl: float = option(
        "TOKEN_DEFAULT_TTL",
        "300",
        "How long a token with no readable exp is cached, in seconds",
        p.positive(float),
    )
    page_cache_ttl: float = option(
        "PAGE_CACHE_TTL",
        "60",
        "Seconds a fetched widget page is served before it is revalidated",
        p.positive(float),
    )
    page_stale_if_error: float = option(
        "PAGE_STALE_IF_ERROR",
        "600",
        "Seconds past its TTL a page is still served while the upstream fails",
        p.not_negative(float),
    )
    widget_template: Path | None = option(
        "WIDGET_TEMPLATE",
        "",
        "A Jinja2 file replacing the built-in loader page of a vendor that has one",
        p.template_path,
        shown="the provider's page in `templates/`",
    )
    log_format: Literal["json", "text", ""] = option(
        "LOG_FORMAT",
        "",
        "Log lines as json or text",
        p.optional(p.choice("json", "text")),
        shown="`json` for `serve`, `text` for `demo`",
    )
    log_level: str = option(
        "LOG_LEVEL", "INFO", "Lowest level logged: DEBUG, INFO, WARNING or ERROR", p.log_level
    )
    log_emails: bool = option(
        "LOG_EMAILS", "false", "Log emails in full instead of masked (a***@example.com)", p.flag
    )
    metrics_enabled: bool = option(
        "METRICS_ENABLED", "true", "Serve Prometheus metrics at /metrics", p.flag
    )
    metrics_allow: tuple[Network, ...] = option(
        "METRICS_ALLOW",
        "127.0.0.0/8 ::1",
        "CIDRs that may read /metrics (the direct peer's address)",
        p.networks,
    )
    # The chosen vendor's own group (its options are declared in its folder).
    vendor: VendorSettings

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value, for the redaction and leak checks."""
        # A cache URL is a Secret for its credentials, which are the secret part of it.
        found = [*secrets_in(self, skip=("cache_url",)), *secrets_in(self.vendor)]
        return (*found, *url_secrets(self.cache_url.reveal()))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from a mapping of variables, reporting every problem at once."""
        problems: list[str] = []
        values = parse_options(CORE_OPTIONS, env, problems)
        provider = PROVIDERS.get(values.get("token_provider", ""))
        group: VendorSettings | None = None
        if provider is not None:
            group_problems: list[str] = []
            fields = parse_options(
                options_of(provider.settings, provider.name), env, group_problems
            )
            if not group_problems:
                group = provider.settings(**fields)
                group_problems += group.problems()
                if not values.get("upstream_allow_http"):
                    group_problems += _in_clear(group, provider.name)
            problems += group_problems
        problems += _cross_check(values)
        if provider is not None:
            problems += _anonymous(values, provider)
        if group is not None:
            problems += _session_needs(values, group)
        if problems:
            raise SettingsError(problems)
        assert group is not None  # TOKEN_PROVIDER parsed, so its group did too
        assert provider is not None
        if values.get("allow_anonymous") is None:
            values["allow_anonymous"] = provider.anonymous == "shared"
        if not values["frame_ancestors"]:
            policy = OriginPolicy(values["allowed_origins"])
            values["frame_ancestors"] = ("'self'", *policy.csp_sources)
        return cls(**values, vendor=group)

    @classmethod
    def load(cls, env_file: Path | None = Path(".env")) -> Settings:
        """The process environment over an optional `.env` file; the environment wins."""
        return cls.from_env(read_environ(env_file))


CORE_OPTIONS: tuple[Option, ...] = options_of(Settings)


def all_options() -> tuple[Option, ...]:
    """Every setting: the core, then each vendor's group in registry order."""
    return CORE_OPTIONS + tuple(
        opt
        for provider in PROVIDERS.values()
        for opt in options_of(provider.settings, provider.name)
    )


def _cross_check(values: dict[str, Any]) -> list[str]:
    """Problems no single setting shows (among the settings that parsed)."""
    problems = []
    get = values.get
    if get("session_same_site") == "none" and get("session_https_only") is False:
        problems.append(
            "SESSION_SAME_SITE: none is only accepted by browsers with a Secure cookie;"
            " set SESSION_HTTPS_ONLY=true"
        )
    if get("identity_source") == "header" and get("identity_proxies") == ():
        problems.append(
            "IDENTITY_PROXIES: IDENTITY_SOURCE=header needs the CIDRs of the proxy that sets"
            f" {get('identity_header')}; without them nobody is ever signed in"
        )
    return problems


def _anonymous(values: dict[str, Any], provider: Provider[Any]) -> list[str]:
    if values.get("allow_anonymous") and provider.anonymous is None:
        return [
            f"ALLOW_ANONYMOUS: {provider.name} issues a token per signed-in user and has no"
            " anonymous mode; a visitor who is not signed in can't be given a widget"
        ]
    return []


def _session_needs(values: dict[str, Any], group: VendorSettings) -> list[str]:
    """A vendor's token made from session values needs the session to provide them."""
    needs = group.session_needs()
    if not needs:
        return []
    if values.get("identity_source") == "header":
        return [
            f"IDENTITY_SOURCE: header gives only the email, but the vendor's token needs"
            f" {', '.join(needs)} from the session"
        ]
    listed = {path[-1] for path in values.get("session_metadata_keys", ())}
    return [
        f"SESSION_METADATA_KEYS: must list {name}, which the vendor's token is made from"
        for name in needs
        if name not in listed
    ]


def _in_clear(group: VendorSettings, vendor: str) -> list[str]:
    """A vendor URL on plain http beyond this machine would carry keys or tokens in clear."""
    return [
        f"{opt.name}: {value} is plain http beyond loopback, so the key or tokens would"
        " travel in clear; use https:// (or UPSTREAM_ALLOW_HTTP=true to accept it)"
        for opt in options_of(type(group), vendor)
        if isinstance(value := getattr(group, opt.field), str)
        and value.startswith("http://")
        and not p.is_loopback(value)
    ]


def read_environ(env_file: Path | None = Path(".env")) -> dict[str, str]:
    merged: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ)
    return merged
