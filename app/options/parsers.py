"""Parsers for settings: each takes the raw string and returns the value or raises
ValueError with a reason a merchant can act on."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from ..cache.urls import Topology, topology
from ..delivery.page import COLORS, Color
from ..secret import Secret
from ..security.forwarded import Network, parse_networks, too_broad
from ..security.origins import OriginRule

# A single path segment: no slash, no dot-segment, nothing that needs escaping.
_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._~-]{0,127}")
_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")  # inside a URL: whitespace, controls
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token: cookie and header names
_SOURCE = re.compile(
    r"'self'|'none'|[a-z][a-z0-9+.-]*:"  # keyword or scheme-source
    r"|([a-z][a-z0-9+.-]*://)?(\*\.)?[a-z0-9.-]+(:(\d+|\*))?",  # host-source
    re.IGNORECASE,
)


def is_segment(value: str) -> bool:
    return _SEGMENT.fullmatch(value) is not None


def http_url(raw: str) -> SplitResult:
    """An http(s) URL's parts, checked: the one reading of a URL every setting shares.

    The scheme is compared as parsed (`urlsplit` lowers it: `HTTP://` is http), so no
    spelling passes for another; spaces and control characters inside are refused,
    since `urlsplit` drops tabs and line breaks and a leading control character without
    a word (what a check saw would not be what is sent); the host must be there and the
    port a port."""
    value = raw.strip()
    if _UNSAFE.search(value):
        raise ValueError("must not contain spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL such as https://widgets.example.com")
    try:
        parts.port  # noqa: B018 (a property that raises on a bad port)
    except ValueError:
        raise ValueError("has a bad port (1-65535)") from None
    return parts


def url(raw: str) -> str:
    """An http(s) URL without query, fragment or credentials, in its one spelling: scheme
    and host in lower case, no trailing slash. Whether plain http is acceptable is for
    the settings to say (`UPSTREAM_ALLOW_HTTP`, `plain_http`), not the parser."""
    parts = http_url(raw)
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError("must not carry a query, fragment or credentials")
    return urlunsplit((parts.scheme, parts.netloc.lower(), parts.path, "", "")).rstrip("/")


def plain_http(value: str) -> bool:
    """True for an http:// URL (any spelling) beyond this machine: keys or tokens sent
    there, or a script loaded from there, travel in clear."""
    return urlsplit(value.strip()).scheme == "http" and not is_loopback(value.strip())


def is_loopback(address: str) -> bool:
    """True for a URL or host on this machine (localhost, 127.0.0.0/8, ::1)."""
    host = urlsplit(address).hostname if "://" in address else address
    if host is None:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def header_value(raw: str) -> Secret:
    """A secret sent as an HTTP header value: visible ASCII only, or every request fails."""
    value = text(raw)
    if not all("\x21" <= ch <= "\x7e" for ch in value):
        raise ValueError("must be visible ASCII (it is sent as an HTTP header)")
    return Secret(value)


def networks(raw: str) -> tuple[Network, ...]:
    """CIDRs of peers to trust (every trust list's parser). A list that covers too much
    of the internet to be a set of proxies (`too_broad`: `0.0.0.0/0`, or the same in
    pieces or IPv4-mapped) is refused."""
    found = parse_networks(raw)
    if problem := too_broad(found):
        raise ValueError(problem)
    return found


def text(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


def secret(raw: str) -> Secret:
    return Secret(text(raw))


def session_secret(raw: str) -> Secret:
    if len(raw) < 32:
        raise ValueError(
            "must be at least 32 characters; generate one with"
            " python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    return Secret(raw)


def segment(raw: str) -> str:
    if not is_segment(raw.strip()):
        raise ValueError("must be letters, digits, '_', '-', '.' or '~' (one path segment)")
    return raw.strip()


def color(raw: str) -> Color:
    value = raw.strip()
    if value in COLORS:
        return "light" if value == "light" else "dark"
    raise ValueError(f"{shown(raw)} is not one of {', '.join(COLORS)}")


def cookie_name(raw: str) -> str:
    if not _TOKEN.fullmatch(raw):
        raise ValueError("must be a valid cookie name (letters, digits, -_. and similar)")
    return raw


def header_name(raw: str) -> str:
    if not _TOKEN.fullmatch(raw.strip()):
        raise ValueError("must be an HTTP header name")
    return raw.strip().lower()


def dotted_path(raw: str) -> tuple[str, ...]:
    parts = tuple(raw.strip().split("."))
    if not all(parts):
        raise ValueError("must be a key or a dotted path such as user.email")
    return parts


def key_list(raw: str) -> tuple[tuple[str, ...], ...]:
    return tuple(dotted_path(k) for k in raw.split(",") if k.strip())


def login_url(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    try:
        http_url(value)
    except ValueError:
        raise ValueError("must be a path such as /login or an http(s) URL") from None
    return value


def frame_ancestors(raw: str) -> tuple[str, ...]:
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


def allowed_origins(raw: str) -> tuple[OriginRule, ...]:
    return tuple(OriginRule.parse(e) for e in raw.replace(",", " ").split())


def cache_url(raw: str) -> Topology:
    """Read once, here: what `redis_client` builds from (see `cache.topology`)."""
    return topology(raw)


def template_path(raw: str) -> Path | None:
    if not raw.strip():
        return None
    path = Path(raw.strip())
    if not path.is_file():
        raise ValueError(f"{raw.strip()!r} is not a file")
    return path


def flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{shown(raw)} is not true or false")


def choice(*choices: str) -> Callable[[str], Any]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"{shown(raw)} is not one of {', '.join(choices)}")
        return value

    return parse


def shown(raw: str) -> str:
    """A value given, as a message quotes it: trimmed, escaped, at most 40 characters.
    (Only for settings that are not secret: a secret's parser never quotes it.)"""
    value = raw.strip()
    return repr(value if len(value) <= 40 else value[:40] + "…")


def pattern(regex: str, meaning: str) -> Callable[[str], str]:
    compiled = re.compile(regex)

    def parse(raw: str) -> str:
        if not compiled.fullmatch(raw.strip()):
            raise ValueError(f"must be {meaning}")
        return raw.strip()

    return parse


# Subresource Integrity: one or more `sha256-`/`sha384-`/`sha512-` base64 digests.
_DIGEST = r"(sha256|sha384|sha512)-[A-Za-z0-9+/]+={0,2}"
integrity = pattern(rf"{_DIGEST}( +{_DIGEST})*", "sha256-, sha384- or sha512- and a base64 digest")


def secret_matching(regex: str, meaning: str) -> Callable[[str], Secret]:
    """A secret of a known shape (a vendor's key format), checked before it is used."""
    parse = pattern(regex, meaning)
    return lambda raw: Secret(parse(raw))


def optional(parse: Callable[[str], Any], empty: Any = "") -> Callable[[str], Any]:
    """Empty stays `empty`: the option may be left unset."""
    return lambda raw: parse(raw) if raw.strip() else empty


def number(
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


def positive(cast: Callable[[str], float]) -> Callable[[str], Any]:
    return number(cast, minimum=0, inclusive=False)


def not_negative(cast: Callable[[str], float]) -> Callable[[str], Any]:
    return number(cast, minimum=0, inclusive=True)


def log_level(raw: str) -> str:
    return str(choice("debug", "info", "warning", "error")(raw)).upper()
