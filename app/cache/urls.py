"""CACHE_URL's forms, read once at start-up into a checked `Topology`.

    redis://[user:password@]host:port/db, rediss://…, unix://…   one server
    redis+sentinel://[user:password@]host:port[,host:port…]/service[/db]
    rediss+sentinel://…                                          the master a Sentinel names
    redis+cluster://[user:password@]host:port[,host:port…]
    rediss+cluster://…                                           a Redis Cluster

The credentials are the data nodes' (master, replicas, cluster nodes). Sentinels that
want their own say so with `?sentinel_username=…&sentinel_password=…`. TLS options
(`ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`, `ssl_cert_reqs`) apply to every
connection, sentinels included, for the `rediss+` schemes. One server takes them too
(with `rediss://`), and redis-py's `db`, `username`, `password`, `client_name`,
`socket_timeout`, `socket_connect_timeout`, `health_check_interval` and `protocol`.

`topology()` reads the URL (`Settings`): every problem is a ValueError there, never at
the first connection, and no message holds a password or an option's value.
`topology.redis_client` builds the client from what it read.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field, replace
from difflib import get_close_matches
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from ..secret import Secret

SENTINEL_SCHEMES: Final = {"redis+sentinel": False, "rediss+sentinel": True}  # → TLS
CLUSTER_SCHEMES: Final = {"redis+cluster": False, "rediss+cluster": True}
SINGLE_SCHEMES: Final = {"redis": False, "rediss": True, "unix": False}
DEFAULT_PORTS: Final = {"single": 6379, "sentinel": 26379, "cluster": 6379}
TLS_OPTIONS: Final = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")
SENTINEL_OPTIONS: Final = ("sentinel_username", "sentinel_password")
# The query options of one server, as redis-py reads them (the credentials and `db`
# go to their own fields).
SINGLE_OPTIONS: Final = (
    "db", "username", "password", "client_name", "socket_timeout", "socket_connect_timeout",
    "health_check_interval", "protocol",
)  # fmt: skip
EXAMPLES: Final = {
    "single": "redis://127.0.0.1:6379/0",
    "sentinel": "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster/0",
    "cluster": "redis+cluster://127.0.0.1:7000,127.0.0.1:7001",
}

Kind = Literal["memory", "single", "sentinel", "cluster"]


@dataclass(frozen=True)
class Topology:
    """A CACHE_URL, read and checked once: what kind of deployment, where, and with
    which credentials and options (typed), all that `redis_client` needs. The password
    and the options (a sentinel's password among them) never show in its repr."""

    kind: Kind
    nodes: tuple[tuple[str, int], ...] = ()  # one server, the sentinels, or cluster nodes
    service: str = ""  # the Sentinel's name for the master
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    options: tuple[tuple[str, object], ...] = field(default=(), repr=False)
    socket: str = ""  # unix://: the socket's path
    url: Secret = field(default=Secret(""), repr=False, compare=False)  # as written

    def option(self, name: str) -> Any:
        return dict(self.options).get(name)

    @property
    def secrets(self) -> list[str]:
        """Every credential the URL carries, as written and as sent (for redaction)."""
        return url_secrets(self.url.reveal())

    @property
    def shown(self) -> str:
        """The URL without its credentials, for anything shown."""
        return redacted_url(self.url.reveal())


def topology(url: str) -> Topology:
    """Read a CACHE_URL (see the module's docstring); ValueError with a reason a
    merchant can act on, which never holds a password nor any option's value."""
    value = url.strip()
    scheme, sep, rest = value.partition("://")
    scheme = scheme.lower()
    if scheme == "memory" and sep:
        if rest:
            raise ValueError("memory:// takes no host, path or option")
        return Topology("memory", url=Secret(value))
    if not sep or scheme not in {**SINGLE_SCHEMES, **SENTINEL_SCHEMES, **CLUSTER_SCHEMES}:
        raise ValueError(
            "must be memory:// or a redis://, rediss://, unix://, redis+sentinel://,"
            " rediss+sentinel://, redis+cluster:// or rediss+cluster:// URL"
        )
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError(f"a {scheme} URL must not hold spaces or control characters")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in rest[len(authority) :]:
        # A password with an unencoded /, ? or # ends the host part early: the rest of
        # the password would be read as a host, a path or an option, and shown as one.
        raise ValueError(
            "an '@' after the host: percent-encode a '/', '?', '#' or '@' in the user name"
            " or password (%2F, %3F, %23, %40), and an '@' in a path or an option (%40)"
        )
    if "#" in value:
        raise ValueError(f"a {scheme} URL must not carry a fragment (a '#' in it is %23)")
    try:
        parts = urlsplit(value)
    except ValueError:  # its reason ("Invalid IPv6 URL") says nothing of the fix
        raise ValueError(
            f"a {scheme} URL has a '[' or ']' that is not around an IPv6 address"
            " ([::1]:6379); in a password, write them as %5B and %5D"
        ) from None
    userinfo, _, hosts = authority.rpartition("@")
    user, _, password = userinfo.partition(":")
    if scheme in SINGLE_SCHEMES:
        kind: Kind = "single"
        tls = SINGLE_SCHEMES[scheme]
    elif scheme in SENTINEL_SCHEMES:
        kind, tls = "sentinel", SENTINEL_SCHEMES[scheme]
    else:
        kind, tls = "cluster", CLUSTER_SCHEMES[scheme]
    options = _options(scheme, kind, tls, parts.query)
    found = Topology(
        kind,
        tls=tls,
        username=unquote(user) or options.pop("username", None),
        password=unquote(password) or options.pop("password", None),
        url=Secret(value),
    )
    options.pop("username", None), options.pop("password", None)
    path = [unquote(p) for p in parts.path.split("/")[1:]]
    if path and path[-1] == "":
        path.pop()  # a trailing slash
    if scheme == "unix":
        if hosts:
            raise ValueError("a unix URL names a socket's path, no host: unix:///run/redis.sock")
        if not path:
            raise ValueError("a unix URL needs the socket's path: unix:///run/redis.sock")
        return replace(
            found,
            socket="/" + "/".join(path),
            db=options.pop("db", 0),
            options=tuple(options.items()),
        )
    nodes = tuple(_node(h, kind) for h in hosts.split(",") if h.strip())
    if not nodes:
        needs = "a host" if kind == "single" else "at least one host:port"
        raise ValueError(f"a {scheme} URL needs {needs}, e.g. {EXAMPLES[kind]}")
    if kind == "single":
        if len(nodes) > 1:
            raise ValueError(
                f"a {scheme} URL names one server; for several, redis+sentinel:// or"
                " redis+cluster://"
            )
        if len(path) > 1 or (path and not _whole(path[0])):
            raise ValueError(
                f"after the host only a database number (0 or more) may follow: {EXAMPLES[kind]}"
            )
        db = options.pop("db", int(path[0]) if path else 0)
        return replace(found, nodes=nodes, db=db, options=tuple(options.items()))
    service, db = "", 0
    if kind == "sentinel":
        if not path or not path[0]:
            raise ValueError(
                f"a {scheme} URL needs the master's service name, e.g. {EXAMPLES[kind]}"
            )
        service, rest_ = path[0], path[1:]
        if len(rest_) > 1 or (rest_ and not _whole(rest_[0])):
            raise ValueError(
                "after the service name only a database number (0 or more) may follow:"
                f" {EXAMPLES[kind]}"
            )
        db = int(rest_[0]) if rest_ else 0
    elif path not in ([], ["0"]):
        raise ValueError(f"a Redis Cluster has database 0 only: no path, e.g. {EXAMPLES[kind]}")
    return replace(found, nodes=nodes, service=service, db=db, options=tuple(options.items()))


def _options(scheme: str, kind: Kind, tls: bool, query: str) -> dict[str, Any]:
    """The query's options, each known for this kind of URL and typed; the messages
    name an option (only one this module knows, or close to one) but never a value."""
    allowed = {
        "single": SINGLE_OPTIONS,
        "sentinel": SENTINEL_OPTIONS,
        "cluster": (),
    }[kind] + TLS_OPTIONS
    known = (*SINGLE_OPTIONS, *SENTINEL_OPTIONS, *TLS_OPTIONS)
    found: dict[str, Any] = {}
    for name, raw in parse_qsl(query, keep_blank_values=True):
        if name not in allowed:
            # Its name is shown only when it is, or is close to, one this module knows:
            # any other may be a piece of a password that lost its percent-encoding.
            close = get_close_matches(name.lower(), known, 1, 0.75)
            said = f"unknown option {name}" if close else "an unknown option"
            hint = f" (did you mean {close[0]}?)" if close and close[0] != name else ""
            raise ValueError(f"{said} in a {scheme} URL{hint} (known: {', '.join(allowed)})")
        if name in TLS_OPTIONS and not tls:
            raise ValueError(f"{name} is for TLS: write rediss{scheme.removeprefix('redis')}://")
        if name in found:
            raise ValueError(f"{name} is given twice in the {scheme} URL")
        found[name] = _typed(name, raw)
    return found


def _typed(name: str, raw: str) -> object:
    if name in ("db", "health_check_interval"):
        if not _whole(raw):
            raise ValueError(f"{name} must be a whole number (0 or more)")
        return int(raw)
    if name in ("socket_timeout", "socket_connect_timeout"):
        try:
            number = float(raw)
        except ValueError:
            number = math.nan
        if not number > 0 or math.isinf(number):
            raise ValueError(f"{name} must be a number of seconds greater than 0")
        return number
    if name == "protocol":
        if raw not in ("2", "3"):
            raise ValueError("protocol must be 2 or 3")
        return int(raw)
    if name == "ssl_cert_reqs":
        if raw not in ("none", "optional", "required"):
            raise ValueError("ssl_cert_reqs must be none, optional or required")
        return raw
    if not raw and name not in ("password", "sentinel_password"):
        raise ValueError(f"{name} must not be empty")
    return raw


def _node(raw: str, kind: Kind) -> tuple[str, int]:
    """One `host[:port]` of the host list. The messages name a host only once it is
    read as one, and never quote a port: without its '@', a password stands where the
    host list is (`redis://user:password`), and its pieces would be read as them."""
    raw = raw.strip()
    if raw.startswith("["):  # [::1]:port
        host, _, rest = raw[1:].partition("]")
        if not _is_ipv6(host) or (rest and not rest.startswith(":")):
            raise ValueError("a host in [ ] must be an IPv6 address, e.g. [::1]:6379")
        sep, port = rest[:1], rest[1:]
    else:
        host, sep, port = raw.rpartition(":") if ":" in raw else (raw, "", "")
    if not host:
        raise ValueError("an entry of the host list has no host: it is not host:port")
    if ":" in host and not raw.startswith("["):
        raise ValueError("an IPv6 address is written in [ ], e.g. [::1]:6379")
    if not raw.startswith("[") and not _HOST.fullmatch(host):
        raise ValueError(
            "a host of the URL is not a host name or address (letters, digits, '.', '-';"
            " a name in another script in its xn-- form)"
        )
    if not sep:
        return host, DEFAULT_PORTS[kind]
    if not _whole(port) or not 0 < int(port) < 65536:
        raise ValueError(f"{host} has a bad port: a port is a number from 1 to 65535")
    return host, int(port)


# A DNS name or an IPv4 address (underscores too: container and service names have them).
_HOST: Final = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?")


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _whole(text: str) -> bool:
    """A whole number written in ASCII digits (`str.isdigit` takes '²' and '٣' too)."""
    return text.isascii() and text.isdigit()


def url_secrets(url: str) -> list[str]:
    """Every credential a Redis URL can carry: the userinfo password (as written and
    percent-decoded, as it is sent), `?password=`, `?sentinel_password=` and any other
    `…password=` query parameter. The same for every scheme: a Sentinel's or a
    Cluster's list of hosts is in the netloc, after the userinfo."""
    parts = urlsplit(url)
    found = [parts.password] if parts.password else []
    found += [v for k, v in parse_qsl(parts.query) if "password" in k.lower() and v]
    return list(dict.fromkeys([*found, *(unquote(v) for v in found)]))


def redacted_url(url: str) -> str:
    """The URL without its credentials, for anything shown: log lines, checks, errors."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        host = netloc.rpartition("@")[2]
        netloc = (f"{parts.username}:***@" if parts.username else ":***@") + host
    query = urlencode(
        [(k, "***" if "password" in k.lower() else v) for k, v in parse_qsl(parts.query)],
        safe="*/",
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))
