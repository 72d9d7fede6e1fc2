"""Settings: read once at start-up from the environment (and `.env`), validated as a
whole, then passed down as one frozen object.

`OPTIONS` is the single source of truth for every name, default and description;
the README table and `.env.example` are checked against it by the tests.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values

from app.origins import OriginPolicy, OriginRule
from app.proxies import Network, parse_networks
from app.widgets import COLORS, WIDGET_TYPES, Color, Widget, is_segment

PROVIDERS: Final = ("returningai", "neuroon", "hissuno")


class Secret:
    """A string that never shows itself in a repr, str, log line or traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class SettingsError(Exception):
    """Raised when the configuration is unusable; lists every problem at once."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


# --- parsers: each takes the raw string and returns the value or raises ValueError ---


def _url(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL such as https://prod-widgets.returning.ai")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("must not carry a query, fragment or credentials")
    return raw.strip().rstrip("/")


def _text(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


def _secret(raw: str) -> Secret:
    return Secret(_text(raw))


def _session_secret(raw: str) -> Secret:
    if len(raw) < 32:
        raise ValueError(
            "must be at least 32 characters; generate one with"
            " python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return Secret(raw)


def _segment(raw: str) -> str:
    if not is_segment(raw.strip()):
        raise ValueError("must be letters, digits, '_', '-', '.' or '~' (one path segment)")
    return raw.strip()


def _widget_type(raw: str) -> str:
    if raw.strip() not in WIDGET_TYPES:
        raise ValueError(f"must be one of {', '.join(WIDGET_TYPES)}")
    return raw.strip()


def _color(raw: str) -> Color:
    value = raw.strip()
    if value in COLORS:
        return "light" if value == "light" else "dark"
    raise ValueError(f"must be one of {', '.join(COLORS)}")


def _widgets(raw: str) -> tuple[Widget, ...]:
    return tuple(Widget.parse(pair) for pair in raw.split(",") if pair.strip())


_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _cookie_name(raw: str) -> str:
    if not _COOKIE_NAME.fullmatch(raw):
        raise ValueError("must be a valid cookie name (letters, digits, -_. and similar)")
    return raw


def _dotted_path(raw: str) -> tuple[str, ...]:
    parts = tuple(raw.strip().split("."))
    if not all(parts):
        raise ValueError("must be a key or a dotted path such as user.email")
    return parts


def _login_url(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.hostname:
        return value
    raise ValueError("must be a path such as /login or an http(s) URL")


_SOURCE = re.compile(
    r"'self'|'none'|[a-z][a-z0-9+.-]*:"  # keyword or scheme-source
    r"|([a-z][a-z0-9+.-]*://)?(\*\.)?[a-z0-9.-]+(:(\d+|\*))?",  # host-source
    re.IGNORECASE,
)


def _frame_ancestors(raw: str) -> tuple[str, ...]:
    sources = tuple(raw.split())
    if not sources:
        return ()  # derived: 'self' plus ALLOWED_ORIGINS
    keywords = [s for s in sources if s.lower() in ("self", "none")]
    if keywords:
        raise ValueError(
            f"write {keywords[0]!r} with its single quotes, as '{keywords[0].lower()}'"
            f" (in .env: FRAME_ANCESTORS=\"'{keywords[0].lower()}'\")"
        )
    bad = [s for s in sources if not _SOURCE.fullmatch(s)]
    if bad:
        raise ValueError(f"not a CSP source: {' '.join(bad)}")
    if "'none'" in sources and len(sources) > 1:
        raise ValueError("'none' must stand alone")
    return sources


def _cache_url(raw: str) -> Secret:
    value = raw.strip()
    scheme = urlsplit(value).scheme
    if value != "memory://" and scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must be memory:// or a redis://, rediss:// or unix:// URL")
    if scheme in ("redis", "rediss") and not urlsplit(value).hostname:
        raise ValueError("a redis URL needs a host, e.g. redis://127.0.0.1:6379/0")
    return Secret(value)  # a Redis URL may carry a password


def _number(
    cast: Callable[[str], float], *, minimum: float, inclusive: bool
) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        try:
            value = cast(raw.strip())
        except ValueError:
            raise ValueError(f"must be a number, got {raw!r}") from None
        if value < minimum or (value == minimum and not inclusive):
            raise ValueError(f"must be {'at least' if inclusive else 'greater than'} {minimum:g}")
        return value

    return parse


def _allowed_origins(raw: str) -> tuple[OriginRule, ...]:
    return tuple(OriginRule.parse(e) for e in raw.replace(",", " ").split())


def _choice(*choices: str) -> Callable[[str], Any]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return parse


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _header_name(raw: str) -> str:
    if not _COOKIE_NAME.fullmatch(raw.strip()):
        raise ValueError("must be an HTTP header name")
    return raw.strip().lower()


def _optional(parse: Callable[[str], Any], empty: Any = "") -> Callable[[str], Any]:
    """Empty stays `empty`: the option is optional, or required only by some providers."""
    return lambda raw: parse(raw) if raw.strip() else empty


def _optional_secret(parse: Callable[[str], str]) -> Callable[[str], Secret]:
    return lambda raw: Secret(parse(raw) if raw.strip() else "")


def _pattern(regex: str, meaning: str) -> Callable[[str], str]:
    compiled = re.compile(regex)

    def parse(raw: str) -> str:
        if not compiled.fullmatch(raw.strip()):
            raise ValueError(f"must be {meaning}")
        return raw.strip()

    return parse


def _key_list(raw: str) -> tuple[tuple[str, ...], ...]:
    return tuple(_dotted_path(k) for k in raw.split(",") if k.strip())


def _template_path(raw: str) -> Path | None:
    if not raw.strip():
        return None
    path = Path(raw.strip())
    if not path.is_file():
        raise ValueError(f"{raw.strip()!r} is not a file")
    return path


def _positive(cast: Callable[[str], float]) -> Callable[[str], Any]:
    return _number(cast, minimum=0, inclusive=False)


def _not_negative(cast: Callable[[str], float]) -> Callable[[str], Any]:
    return _number(cast, minimum=0, inclusive=True)


@dataclass(frozen=True, slots=True)
class Option:
    name: str
    default: str | None  # None: required
    help: str
    parse: Callable[[str], Any]
    shown: str | None = None  # the default as the README says it, when derived
    needed_by: tuple[str, ...] = ()  # token providers for which it is required

    @property
    def field(self) -> str:
        return self.name.lower()


OPTIONS: Final[tuple[Option, ...]] = (
    Option(
        "TOKEN_PROVIDER",
        "returningai",
        "Which vendor's tokens this proxy serves: returningai, neuroon or hissuno",
        _choice(*PROVIDERS),
    ),
    Option(
        "WIDGET_BASE_URL",
        "",
        "Upstream origin, e.g. https://prod-widgets.returning.ai",
        _optional(_url),
        needed_by=("returningai",),
    ),
    Option(
        "WIDGET_API_KEY",
        "",
        "Server-only API key from the vendor; never sent to a browser",
        _optional_secret(_text),
        needed_by=("returningai",),
    ),
    Option(
        "WIDGET_COMMUNITY_ID",
        "",
        "Community id used in the signin path",
        _optional(_segment),
        needed_by=("returningai",),
    ),
    Option(
        "WIDGET_ID",
        "",
        "Default widget id",
        _optional(_segment),
        needed_by=("returningai",),
    ),
    Option("WIDGET_TYPE", "store", f"Default widget type: {', '.join(WIDGET_TYPES)}", _widget_type),
    Option("WIDGET_COLOR", "light", "Default `color` query value: light or dark", _color),
    Option(
        "WIDGETS", "", "Extra widgets the proxy may serve, comma-separated type/id pairs", _widgets
    ),
    Option(
        "SESSION_SECRET",
        None,
        "Secret that signs the session cookie; at least 32 characters",
        _session_secret,
    ),
    Option("SESSION_COOKIE", "session", "Session cookie name", _cookie_name),
    Option(
        "SESSION_EMAIL_KEY",
        "email",
        "Where the email sits in the session; dotted paths such as user.email allowed",
        _dotted_path,
    ),
    Option(
        "SESSION_MAX_AGE",
        "1209600",
        "Oldest session cookie accepted, in seconds (Starlette's default, 14 days)",
        _positive(int),
    ),
    Option(
        "SESSION_HTTPS_ONLY",
        "true",
        "Mark the session cookie Secure (set false only for plain-http development)",
        _flag,
    ),
    Option(
        "SESSION_SAME_SITE",
        "lax",
        "SameSite of the session cookie: lax, strict or none (none needs SESSION_HTTPS_ONLY)",
        _choice("lax", "strict", "none"),
    ),
    Option(
        "IDENTITY_SOURCE",
        "session",
        "Where the user's email comes from: session (the cookie) or header (a trusted proxy)",
        _choice("session", "header"),
    ),
    Option(
        "IDENTITY_HEADER",
        "X-Auth-Request-Email",
        "With IDENTITY_SOURCE=header: the header a trusted proxy sets (oauth2-proxy's default)",
        _header_name,
    ),
    Option(
        "TRUSTED_PROXIES",
        "",
        "CIDRs of reverse proxies whose forwarded headers are believed; default none",
        parse_networks,
    ),
    Option(
        "RATE_LIMIT_PER_MINUTE",
        "60",
        "Widget and token requests a user may make per minute",
        _positive(int),
    ),
    Option(
        "RATE_LIMIT_IP_PER_MINUTE",
        "120",
        "Widget and token requests one client IP may make per minute",
        _positive(int),
    ),
    Option(
        "LOGIN_URL",
        "",
        "Where an anonymous browser is sent (with ?next=); if unset, a 401 page",
        _login_url,
    ),
    Option(
        "ALLOWED_ORIGINS",
        "",
        "Browser origins that may call the proxy and frame its pages: exact origins,"
        " *.domain wildcards (https), or bare hosts for development; space or comma separated",
        _allowed_origins,
    ),
    Option(
        "FRAME_ANCESTORS",
        "",
        "CSP frame-ancestors sources for the widget page, space-separated",
        _frame_ancestors,
        shown="`'self'` plus `ALLOWED_ORIGINS`",
    ),
    Option(
        "UPSTREAM_CONNECT_TIMEOUT",
        "2",
        "Seconds to open a connection to the upstream",
        _positive(float),
    ),
    Option(
        "UPSTREAM_READ_TIMEOUT",
        "5",
        "Seconds to wait for each read from the upstream",
        _positive(float),
    ),
    Option(
        "UPSTREAM_POOL_TIMEOUT",
        "2",
        "Seconds to wait for a free connection in the pool",
        _positive(float),
    ),
    Option(
        "UPSTREAM_MAX_CONNECTIONS",
        "100",
        "Connections to the upstream kept open at most",
        _positive(int),
    ),
    Option(
        "UPSTREAM_MAX_BYTES",
        "2097152",
        "Largest upstream body read, in bytes; larger is a 502",
        _positive(int),
    ),
    Option(
        "UPSTREAM_DEADLINE",
        "8",
        "Seconds one page request may spend on the upstream, retries included",
        _positive(float),
    ),
    Option(
        "UPSTREAM_RETRIES",
        "2",
        "Retries after a connection error, timeout, 502, 503 or 504, within the deadline",
        _not_negative(int),
    ),
    Option(
        "BREAKER_FAILURES",
        "5",
        "Consecutive upstream failures that open the circuit",
        _positive(int),
    ),
    Option(
        "BREAKER_COOLDOWN",
        "30",
        "Seconds an open circuit refuses calls before one probe is let through",
        _positive(float),
    ),
    Option(
        "SHUTDOWN_TIMEOUT",
        "10",
        "Seconds requests in flight may take to finish after SIGTERM",
        _positive(int),
    ),
    Option(
        "CACHE_URL",
        "memory://",
        "Where tokens and pages are cached: memory:// (one process) or redis://host:port/db",
        _cache_url,
    ),
    Option(
        "CACHE_MAX_ENTRIES",
        "100000",
        "Entries kept in each process's memory cache; least recently used go first",
        _positive(int),
    ),
    Option(
        "TOKEN_REFRESH_MARGIN",
        "60",
        "Seconds before a token's exp at which it is no longer served",
        _not_negative(float),
    ),
    Option(
        "TOKEN_MAX_TTL",
        "3600",
        "Longest a token is cached, in seconds, whatever its exp says",
        _positive(float),
    ),
    Option(
        "TOKEN_DEFAULT_TTL",
        "300",
        "How long a token with no readable exp is cached, in seconds",
        _positive(float),
    ),
    Option(
        "PAGE_CACHE_TTL",
        "60",
        "Seconds a fetched widget page is served before it is revalidated",
        _positive(float),
    ),
    Option(
        "PAGE_STALE_IF_ERROR",
        "600",
        "Seconds past its TTL a page is still served while the upstream fails",
        _not_negative(float),
    ),
    Option(
        "LOG_FORMAT",
        "",
        "Log lines as json or text",
        _optional(_choice("json", "text")),
        shown="`json` for `serve`, `text` for `demo`",
    ),
    Option(
        "LOG_LEVEL",
        "INFO",
        "Lowest level logged: DEBUG, INFO, WARNING or ERROR",
        lambda raw: _choice("debug", "info", "warning", "error")(raw).upper(),
    ),
    Option(
        "LOG_EMAILS",
        "false",
        "Log emails in full instead of masked (a***@example.com)",
        _flag,
    ),
    Option(
        "METRICS_ENABLED",
        "true",
        "Serve Prometheus metrics at /metrics",
        _flag,
    ),
    Option(
        "METRICS_ALLOW",
        "127.0.0.0/8 ::1",
        "CIDRs that may read /metrics (the direct peer's address)",
        parse_networks,
    ),
    Option(
        "WIDGET_TEMPLATE",
        "",
        "A Jinja2 file replacing the built-in loader page (neuroon, hissuno)",
        _template_path,
        shown="the provider's page in `templates/`",
    ),
    Option(
        "SESSION_USER_ID_KEY",
        "",
        "Where the user id sits in the session (hissuno's userId); dotted paths allowed",
        _optional(_dotted_path, empty=()),
        shown="the email",
    ),
    Option(
        "SESSION_METADATA_KEYS",
        "",
        "Session keys sent as hissuno's userMetadata, comma-separated, e.g. name,email",
        _key_list,
    ),
    Option(
        "NEUROON_SHOP_ID",
        "",
        "Neuroon shop id",
        _optional(_segment),
        needed_by=("neuroon",),
    ),
    Option(
        "NEUROON_API_KEY",
        "",
        "Neuroon shop API key: sk_ and 32 lowercase hex characters",
        _optional_secret(_pattern(r"sk_[0-9a-f]{32}", "sk_ followed by 32 lowercase hex digits")),
        needed_by=("neuroon",),
    ),
    Option(
        "NEUROON_TOKEN_MODE",
        "local",
        "local: the proxy signs shop tokens itself; remote: it asks NEUROON_API_URL",
        _choice("local", "remote"),
    ),
    Option(
        "NEUROON_API_URL",
        "",
        "Neuroon API origin, for NEUROON_TOKEN_MODE=remote",
        _optional(_url),
    ),
    Option(
        "NEUROON_ROTATE_AFTER",
        "82800",
        "Seconds after which a shop token (valid 24 h) is re-issued",
        _positive(float),
    ),
    Option(
        "NEUROON_SCRIPT_URL",
        "",
        "URL of Neuroon's widget loader script",
        _optional(_url),
        needed_by=("neuroon",),
    ),
    Option(
        "HISSUNO_SECRET_KEY",
        "",
        "Hissuno project secret: sk_live_ and 32 characters of A-Z a-z 0-9 _ -",
        _optional_secret(
            _pattern(r"sk_live_[A-Za-z0-9_-]{32}", "sk_live_ and 32 of [A-Za-z0-9_-]")
        ),
        needed_by=("hissuno",),
    ),
    Option(
        "HISSUNO_PROJECT_ID",
        "",
        "Hissuno project id the widget mounts",
        _optional(_segment),
        needed_by=("hissuno",),
    ),
    Option(
        "HISSUNO_SCRIPT_URL",
        "",
        "URL of Hissuno's widget script",
        _optional(_url),
        needed_by=("hissuno",),
    ),
    Option(
        "HISSUNO_TOKEN_TTL",
        "86400",
        "Lifetime of the user JWTs the proxy signs for Hissuno, in seconds",
        _positive(int),
    ),
)


@dataclass(frozen=True, slots=True)
class Settings:
    token_provider: Literal["returningai", "neuroon", "hissuno"]
    widget_base_url: str
    widget_api_key: Secret
    widget_community_id: str
    widget_id: str
    widget_type: str
    widget_color: Color
    widgets: tuple[Widget, ...]
    session_secret: Secret
    session_cookie: str
    session_email_key: tuple[str, ...]
    session_max_age: int
    session_https_only: bool
    session_same_site: Literal["lax", "strict", "none"]
    identity_source: Literal["session", "header"]
    identity_header: str
    trusted_proxies: tuple[Network, ...]
    rate_limit_per_minute: int
    rate_limit_ip_per_minute: int
    login_url: str | None
    allowed_origins: tuple[OriginRule, ...]
    frame_ancestors: tuple[str, ...]
    upstream_connect_timeout: float
    upstream_read_timeout: float
    upstream_pool_timeout: float
    upstream_max_connections: int
    upstream_max_bytes: int
    upstream_deadline: float
    upstream_retries: int
    breaker_failures: int
    breaker_cooldown: float
    shutdown_timeout: int
    cache_url: Secret
    cache_max_entries: int
    token_refresh_margin: float
    token_max_ttl: float
    token_default_ttl: float
    page_cache_ttl: float
    page_stale_if_error: float
    log_format: Literal["json", "text", ""]
    log_level: str
    log_emails: bool
    metrics_enabled: bool
    metrics_allow: tuple[Network, ...]
    widget_template: Path | None
    session_user_id_key: tuple[str, ...]
    session_metadata_keys: tuple[tuple[str, ...], ...]
    neuroon_shop_id: str
    neuroon_api_key: Secret
    neuroon_token_mode: Literal["local", "remote"]
    neuroon_api_url: str
    neuroon_rotate_after: float
    neuroon_script_url: str
    hissuno_secret_key: Secret
    hissuno_project_id: str
    hissuno_script_url: str
    hissuno_token_ttl: int

    @property
    def default_widget(self) -> Widget:
        return Widget(self.widget_type, self.widget_id)

    @property
    def allowed_widgets(self) -> frozenset[Widget]:
        return frozenset((self.default_widget, *self.widgets))

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value, for the redaction and leak checks."""
        found = [
            secret.reveal()
            for secret in (
                self.widget_api_key,
                self.session_secret,
                self.neuroon_api_key,
                self.hissuno_secret_key,
            )
            if secret.reveal()
        ]
        password = urlsplit(self.cache_url.reveal()).password
        if password:
            found.append(password)
        return tuple(found)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from a mapping of variables, reporting every problem at once."""
        values: dict[str, Any] = {}
        problems: list[str] = []
        provider = env.get("TOKEN_PROVIDER", "returningai").strip().lower()
        for option in OPTIONS:
            raw = env.get(option.name)
            missing = raw is None or not raw.strip()
            if missing and (option.default is None or provider in option.needed_by):
                when = f" with TOKEN_PROVIDER={provider}" if option.needed_by else ""
                problems.append(f"{option.name}: required{when} ({option.help})")
                continue
            try:
                values[option.field] = option.parse(
                    raw if raw is not None else option.default or ""
                )
            except ValueError as exc:
                problems.append(f"{option.name}: {exc}")
        problems += _cross_check(values)
        if problems:
            raise SettingsError(problems)
        if not values["frame_ancestors"]:
            policy = OriginPolicy(values["allowed_origins"])
            values["frame_ancestors"] = ("'self'", *policy.csp_sources)
        return cls(**values)

    @classmethod
    def load(cls, env_file: Path | None = Path(".env")) -> Settings:
        """The process environment over an optional `.env` file; the environment wins."""
        return cls.from_env(read_environ(env_file))


def _cross_check(values: dict[str, Any]) -> list[str]:
    """Problems no single setting shows (among the settings that parsed)."""
    problems = []
    get = values.get
    remote_tokens = get("token_provider") == "neuroon" and get("neuroon_token_mode") == "remote"
    if remote_tokens and not get("neuroon_api_url"):
        problems.append("NEUROON_API_URL: required with NEUROON_TOKEN_MODE=remote")
    if get("session_same_site") == "none" and get("session_https_only") is False:
        problems.append(
            "SESSION_SAME_SITE: none is only accepted by browsers with a Secure cookie;"
            " set SESSION_HTTPS_ONLY=true"
        )
    if get("identity_source") == "header" and get("trusted_proxies") == ():
        problems.append(
            "TRUSTED_PROXIES: IDENTITY_SOURCE=header needs the CIDRs of the proxy that sets"
            f" {get('identity_header')}; without them nobody is ever signed in"
        )
    return problems


def read_environ(env_file: Path | None = Path(".env")) -> dict[str, str]:
    merged: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ)
    return merged
