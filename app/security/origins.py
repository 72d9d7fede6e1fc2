"""Which browser origins may talk to the proxy and frame its pages.

`ALLOWED_ORIGINS` entries come in three forms:

- an exact origin, `https://shop.example.com` (scheme, host and port must all match);
- a wildcard, `*.example.com` or `https://*.example.com`: any subdomain at any depth
  (not the bare domain), over https unless the entry names another scheme;
- a bare host for development, `localhost` or `127.0.0.1`: any scheme, any port, and
  for a name also its subdomains.

Matching is on the normalised origin (lower case, default port made explicit), never
on substrings, so `example.com.evil.io` and `evilexample.com` match nothing above.
`null` never matches.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        port = "" if DEFAULT_PORTS.get(self.scheme) == self.port else f":{self.port}"
        return f"{self.scheme}://{self.host}{port}"


def parse_origin(value: str) -> Origin | None:
    """The normalised origin of an `Origin` header or URL; None if it is not one."""
    value = value.strip()
    if not value or value.lower() == "null" or any(c.isspace() for c in value):
        return None
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in DEFAULT_PORTS or not _valid_host(host) or parts.username is not None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    return Origin(scheme, host, port if port is not None else DEFAULT_PORTS[scheme])


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return _HOSTNAME.fullmatch(host) is not None
    return True


@dataclass(frozen=True, slots=True)
class OriginRule:
    kind: Literal["exact", "wildcard", "host"]
    scheme: str | None  # None: any (a bare host)
    host: str  # for a wildcard, the domain under the `*.`
    port: int | None  # None: any

    def matches(self, origin: Origin) -> bool:
        if self.scheme is not None and origin.scheme != self.scheme:
            return False
        if self.port is not None and origin.port != self.port:
            return False
        if self.kind == "exact":
            return origin.host == self.host
        if self.kind == "wildcard":
            return origin.host.endswith("." + self.host)
        return origin.host == self.host or (
            not _is_ip(self.host) and origin.host.endswith("." + self.host)
        )

    @property
    def csp_sources(self) -> tuple[str, ...]:
        """The same set of origins as CSP `frame-ancestors` sources."""
        if self.scheme is not None and self.port is not None:  # exact or wildcard
            host = self.host if self.kind == "exact" else f"*.{self.host}"
            port = "" if DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}"
            return (f"{self.scheme}://{host}{port}",)
        if _is_ip(self.host):
            return (f"{self.host}:*",)
        return (f"{self.host}:*", f"*.{self.host}:*")

    @classmethod
    def parse(cls, entry: str) -> OriginRule:
        """Read one entry, raising ValueError with a reader-facing reason."""
        text = entry.strip().lower()
        if "://" not in text:
            if text.startswith("*."):
                return cls._wildcard("https", text[2:], 443, entry)
            if not _valid_host(text):
                raise ValueError(f"{entry!r} is not a host, an origin or a *.domain wildcard")
            return cls("host", None, text, None)
        scheme, _, rest = text.partition("://")
        if scheme not in DEFAULT_PORTS:
            raise ValueError(f"{entry!r}: only http and https origins can be allowed")
        if rest.startswith("*."):
            host, _, port = rest[2:].partition(":")
            if not port:
                port_number = DEFAULT_PORTS[scheme]
            elif port.isdigit():
                port_number = int(port)
            else:
                raise ValueError(f"{entry!r} has a bad port")
            return cls._wildcard(scheme, host, port_number, entry)
        origin = parse_origin(text)
        if origin is None:
            raise ValueError(f"{entry!r} is not an origin (scheme://host[:port], no path)")
        return cls("exact", origin.scheme, origin.host, origin.port)

    @classmethod
    def _wildcard(cls, scheme: str, domain: str, port: int, entry: str) -> OriginRule:
        if not _HOSTNAME.fullmatch(domain) or "." not in domain:
            raise ValueError(f"{entry!r}: a wildcard needs a domain of two labels or more")
        return cls("wildcard", scheme, domain, port)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class OriginPolicy:
    def __init__(self, rules: tuple[OriginRule, ...]) -> None:
        self.rules = rules

    def allows(self, origin: Origin | None) -> bool:
        return origin is not None and any(rule.matches(origin) for rule in self.rules)

    @property
    def csp_sources(self) -> tuple[str, ...]:
        return tuple(source for rule in self.rules for source in rule.csp_sources)
