"""Settings: read once at start-up from the environment (and `.env`), validated as a
whole, then passed down as one frozen object.

Each setting is declared once, on its field (`options.option`). The core settings are
below; each vendor's own settings are a group in its folder (`providers/*/settings.py`),
nested as `Settings.vendor` for the chosen `TOKEN_PROVIDER`. Only `create_app` and
the command line read a `Settings`; every component gets keyword arguments.

A setting that configures a component takes its default from the component's own
(`DEFAULT_TIMEOUTS.connect`, `DEFAULT_MAX_ENTRIES`, …), so each default is declared
once; `tests/test_settings_defaults.py` ties the two. What no single setting shows is
`consistency`'s. (Long because it is the table of the core settings, a field each.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

from . import consistency
from .cache import Topology
from .cache.counts import DEFAULT_SYNC_INTERVAL
from .cache.memory import DEFAULT_MAX_ENTRIES
from .cache.pages import DEFAULT_PAGE_TTL, DEFAULT_STALE_IF_ERROR
from .cache.tokens import DEFAULT_LIFETIME
from .delivery.page import DEFAULT_COLOR, Color
from .errors import SettingsError
from .ops.logs import DEFAULT_LOG_LEVEL
from .options import (
    Option,
    option,
    options_of,
    parse_options,
    read_environ,
    secrets_in,
    settings_group,
    strays,
    text,
)
from .options import parsers as p
from .providers import DEFAULT_PROVIDER, PROVIDERS, SHARED_ANONYMOUS, VendorSettings
from .secret import Secret
from .security import identity
from .security.forwarded import Network
from .security.headers import DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_TARGET_BYTES
from .security.origins import OriginRule
from .security.ratelimit import DEFAULT_PER_IP, DEFAULT_PER_USER
from .upstream.breaker import DEFAULT_BREAKER
from .upstream.client import DEFAULT_LIMITS, DEFAULT_RETRIES, DEFAULT_TIMEOUTS

__all__ = ["Option", "Secret", "Settings", "SettingsError", "all_options", "read_environ"]

log = logging.getLogger("widget_proxy.settings")


@settings_group
class Settings:
    token_provider: str = option(
        "TOKEN_PROVIDER",
        DEFAULT_PROVIDER,
        f"Which vendor's tokens this proxy serves: {', '.join(PROVIDERS)}",
        p.choice(*PROVIDERS),
    )
    widget_color: Color = option(
        "WIDGET_COLOR", DEFAULT_COLOR, "Default `color` query value: light or dark", p.color
    )
    session_secret: Secret = option(
        "SESSION_SECRET",
        None,
        "Secret that signs the session cookie; at least 32 characters",
        p.session_secret,
    )
    session_cookie: str = option(
        "SESSION_COOKIE", identity.DEFAULT_COOKIE, "Session cookie name", p.cookie_name
    )
    session_email_key: tuple[str, ...] = option(
        "SESSION_EMAIL_KEY",
        ".".join(identity.DEFAULT_EMAIL_KEY),
        "Where the email sits in the session; dotted paths such as user.email allowed",
        p.dotted_path,
    )
    session_max_age: int = option(
        "SESSION_MAX_AGE",
        text(identity.DEFAULT_MAX_AGE),
        "Oldest session cookie accepted, in seconds (Starlette's default, 14 days)",
        p.positive(int),
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
        identity.DEFAULT_IDENTITY_HEADER,
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
        text(DEFAULT_MAX_HEADER_BYTES),
        "Largest request header block accepted, in bytes (what nginx allows by default);"
        " larger is a 431",
        p.positive(int),
    )
    max_request_target_bytes: int = option(
        "MAX_REQUEST_TARGET_BYTES",
        text(DEFAULT_MAX_TARGET_BYTES),
        "Longest request target (path and query) accepted, in bytes (what nginx's"
        " 8k buffer holds); longer is a 414",
        p.positive(int),
    )
    rate_limit_per_minute: int = option(
        "RATE_LIMIT_PER_MINUTE",
        text(DEFAULT_PER_USER),
        "Widget and token requests a user may make per minute",
        p.positive(int),
    )
    rate_limit_ip_per_minute: int = option(
        "RATE_LIMIT_IP_PER_MINUTE",
        text(DEFAULT_PER_IP),
        "Requests one client IP may make per minute: widget and token requests, and"
        " every refused one (404, 403, 431, ...)",
        p.positive(int),
    )
    allow_anonymous: bool | None = option(
        "ALLOW_ANONYMOUS",
        "",
        "Serve the widget to visitors who are not signed in (only for a vendor with an"
        " anonymous mode: one shop token, or a widget without a token)",
        p.optional(p.flag, empty=None),
        shown=f"`true` for {', '.join(f'`{name}`' for name in SHARED_ANONYMOUS)}, else `false`",
    )
    rate_limit_sync_interval: float = option(
        "RATE_LIMIT_SYNC_INTERVAL",
        text(DEFAULT_SYNC_INTERVAL),
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
        text(DEFAULT_TIMEOUTS.connect),
        "Seconds to open a connection to the upstream",
        p.positive(float),
    )
    upstream_read_timeout: float = option(
        "UPSTREAM_READ_TIMEOUT",
        text(DEFAULT_TIMEOUTS.read),
        "Seconds to wait for each read from the upstream",
        p.positive(float),
    )
    upstream_pool_timeout: float = option(
        "UPSTREAM_POOL_TIMEOUT",
        text(DEFAULT_TIMEOUTS.pool),
        "Seconds to wait for a free connection in the pool",
        p.positive(float),
    )
    upstream_max_connections: int = option(
        "UPSTREAM_MAX_CONNECTIONS",
        text(DEFAULT_LIMITS.max_connections),
        "Connections to the upstream kept open at most",
        p.positive(int),
    )
    upstream_max_bytes: int = option(
        "UPSTREAM_MAX_BYTES",
        text(DEFAULT_LIMITS.max_bytes),
        "Largest upstream body read, in bytes; larger is a 502",
        p.positive(int),
    )
    upstream_deadline: float = option(
        "UPSTREAM_DEADLINE",
        text(DEFAULT_RETRIES.deadline),
        "Seconds one page request may spend on the upstream, retries included",
        p.positive(float),
    )
    upstream_retries: int = option(
        "UPSTREAM_RETRIES",
        text(DEFAULT_RETRIES.retries),
        "Retries after a connection error, timeout, 502, 503 or 504, within the deadline",
        p.not_negative(int),
    )
    breaker_failures: int = option(
        "BREAKER_FAILURES",
        text(DEFAULT_BREAKER.failures),
        "Consecutive upstream failures that open the circuit",
        p.positive(int),
    )
    breaker_cooldown: float = option(
        "BREAKER_COOLDOWN",
        text(DEFAULT_BREAKER.cooldown),
        "Seconds an open circuit refuses calls before one probe is let through;"
        " the longest back-off of a token every visitor shares",
        p.positive(float),
    )
    shutdown_timeout: int = option(
        "SHUTDOWN_TIMEOUT",
        "10",
        "Seconds requests in flight may take to finish after SIGTERM",
        p.positive(int),
    )
    cache_url: Topology = option(
        "CACHE_URL",
        "memory://",
        "Where tokens and pages are cached: memory:// (one process), redis://host:port/db,"
        " redis+sentinel://host:port[,host:port…]/service[/db] (the master a Sentinel names)"
        " or redis+cluster://host:port[,host:port…] (rediss+… for TLS)",
        p.cache_url,
        secret=True,  # it may hold a password: CACHE_URL_FILE too
    )
    cache_max_entries: int = option(
        "CACHE_MAX_ENTRIES",
        text(DEFAULT_MAX_ENTRIES),
        "Entries kept in each process's memory cache; least recently used go first",
        p.positive(int),
    )
    token_refresh_margin: float = option(
        "TOKEN_REFRESH_MARGIN",
        text(DEFAULT_LIFETIME.margin),
        "Seconds before a token's exp at which it is no longer served",
        p.not_negative(float),
    )
    token_max_ttl: float = option(
        "TOKEN_MAX_TTL",
        text(DEFAULT_LIFETIME.max_ttl),
        "Longest a token is cached, in seconds, whatever its exp says",
        p.positive(float),
    )
    token_default_ttl: float = option(
        "TOKEN_DEFAULT_TTL",
        text(DEFAULT_LIFETIME.default_ttl),
        "How long a token with no readable exp is cached, in seconds",
        p.positive(float),
    )
    page_cache_ttl: float = option(
        "PAGE_CACHE_TTL",
        text(DEFAULT_PAGE_TTL),
        "Seconds a fetched widget page is served before it is revalidated",
        p.positive(float),
    )
    page_stale_if_error: float = option(
        "PAGE_STALE_IF_ERROR",
        text(DEFAULT_STALE_IF_ERROR),
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
        "LOG_LEVEL",
        DEFAULT_LOG_LEVEL,
        "Lowest level logged: DEBUG, INFO, WARNING or ERROR",
        p.log_level,
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
    admin_allow: tuple[Network, ...] = option(
        "ADMIN_ALLOW",
        "127.0.0.0/8 ::1",
        "CIDRs that may call /admin/forget, signed too (the direct peer's address)",
        p.networks,
    )
    # The chosen vendor's own group (its options are declared in its folder).
    vendor: VendorSettings

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value, for the redaction and leak checks."""
        # A cache URL's credentials are the secret part of it.
        found = [*secrets_in(self, skip=("cache_url",)), *secrets_in(self.vendor)]
        return (*found, *self.cache_url.secrets)

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
            problems += group_problems
        problems += consistency.problems(values, provider, group)
        if problems:
            raise SettingsError(problems)
        assert group is not None  # TOKEN_PROVIDER parsed, so its group did too
        assert provider is not None
        consistency.fill_in(values, provider)
        return cls(**values, vendor=group)

    @classmethod
    def load(
        cls, env_file: Path | None = Path(".env"), *, warn: Callable[[str], None] | None = None
    ) -> Settings:
        """The process environment over an optional `.env` file; the environment wins.
        A variable that looks like a setting but is none is told to `warn` (or logged)."""
        env = read_environ(env_file)
        for line in strays.warnings(env, all_options()):
            (warn or log.warning)(line)
        return cls.from_env(env)


CORE_OPTIONS: tuple[Option, ...] = options_of(Settings)


def all_options() -> tuple[Option, ...]:
    """Every setting: the core, then each vendor's group in registry order."""
    return CORE_OPTIONS + tuple(
        opt
        for provider in PROVIDERS.values()
        for opt in options_of(provider.settings, provider.name)
    )
