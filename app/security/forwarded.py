"""Who is really on the other end when the proxy sits behind a reverse proxy.

Forwarded headers are believed only from peers inside `TRUSTED_PROXIES`. The client
IP is `X-Forwarded-For` read from the right, skipping trusted proxies only, so a
client can't claim another address by sending the header itself.

A header sent as several lines is one comma-separated list (RFC 9110 §5.3), the lines
in the order received: a proxy may append its hop as a line of its own rather than to
the client's line, so every line is read, never only the first.

Every address is matched and counted in one form (`address`): an IPv4 peer of a
dual-stack listener (`serve --host ::`) arrives as `::ffff:a.b.c.d` and is that IPv4
address, and so is a trust-list range written in that form.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Final

from starlette.datastructures import Headers
from starlette.types import Scope

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Ranges that are never the internet at large: a private network's own (RFC 1918, the
# RFC 6598 shared space Kubernetes and Tailscale use, IPv6 unique-local), loopback and
# link-local. Trusting all of them is a choice about one's own network; they are not
# counted by `too_broad`. (Disjoint: each address is subtracted once.)
LOCAL: Final = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.168.0.0/16", "::1/128", "fc00::/7", "fe80::/10",
    )
)  # fmt: skip
# The most of the public internet one trust list may cover, as a prefix length: a /8's
# worth of IPv4 (1/256 of it), a /24's worth of IPv6. A set of proxies is a few hosts
# or a provider's ranges (CDNs publish IPv4 ranges up to /13, IPv6 up to /28); any more
# is "everyone" in pieces, like `0.0.0.0/1 128.0.0.0/1`.
WIDEST: Final = {4: 8, 6: 24}


def address(text: str) -> Address | None:
    """The address `text` names, in the one form it is matched and counted in, or None.

    `::ffff:a.b.c.d` is the IPv4 address it maps: a dual-stack listener's IPv4 peers
    arrive so. A hop written with its port (`a.b.c.d:port`, `[v6]:port`, as Azure's
    gateway and IIS write them) is the address alone: the port changes with each
    connection, so with it every connection would be a client of its own.
    """
    host = text.strip()
    if host.startswith("["):
        host, bracket, port = host[1:].partition("]")
        if not bracket or not _is_port(port):
            return None
    elif host.count(":") == 1:  # IPv4 with a port: an IPv6 address has two or more
        host, colon, port = host.partition(":")
        if not _is_port(colon + port):
            return None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _is_port(text: str) -> bool:
    """Nothing, or `:` and a port number."""
    return not text or (text[0] == ":" and text[1:].isdigit() and len(text) <= 6)


def parse_networks(raw: str) -> tuple[Network, ...]:
    """CIDRs (or single addresses), separated by spaces or commas. An IPv4-mapped range
    (`::ffff:10.0.0.0/104`) is the IPv4 range it maps, as its addresses are."""
    networks: list[Network] = []
    for entry in raw.replace(",", " ").split():
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR") from None
        mapped = getattr(network.network_address, "ipv4_mapped", None)
        if mapped is not None and network.prefixlen >= 96:
            network = ipaddress.IPv4Network((mapped, network.prefixlen - 96))
        networks.append(network)
    return tuple(networks)


def too_broad(networks: Sequence[Network]) -> str | None:
    """Why a trust list covers too much of the internet to be a set of proxies, or None.

    Counted over the union of its ranges, per IP version, not counting `LOCAL` ones:
    at most a `WIDEST` prefix's worth of public addresses.
    """
    for version, widest in WIDEST.items():
        ranges = [n for n in networks if n.version == version]
        public = _public(ranges)
        bits = 32 if version == 4 else 128
        if public > 1 << (bits - widest):
            named = " ".join(str(n) for n in ranges if _public([n]))
            verb = "trusts" if " " not in named else "trust"
            return (
                f"{named} {verb} at least a /{bits + 1 - public.bit_length()}'s worth of"
                f" public IPv{version} addresses (a trust list may cover a /{widest}'s worth"
                " at most); name the proxies' own CIDRs"
            )
    return None


def _public(ranges: list[Network]) -> int:
    """How many addresses of `ranges` (one IP version) are outside `LOCAL`, each once."""
    total = 0
    for network in ipaddress.collapse_addresses(ranges):  # type: ignore[type-var]
        size = network.num_addresses
        for local in LOCAL:
            if local.version != network.version:
                continue
            if network.subnet_of(local):  # type: ignore[arg-type]
                size = 0
                break
            if local.subnet_of(network):  # type: ignore[arg-type]
                size -= local.num_addresses
        total += size
    return total


# Reading an address costs `ipaddress` microseconds, and every request asks for its
# peer's (twice or more: the request log, admission, the origin guard), while the same
# few strings come back (a proxy's address, a returning client's). So each
# `TrustedProxies` remembers what it read, within a bound; nothing longer than any
# address is remembered (a hop is the client's text).
REMEMBERED: Final = 4096
LONGEST_ADDRESS: Final = 64  # `[v6%zone]:port` included


class TrustedProxies:
    def __init__(self, networks: tuple[Network, ...]) -> None:
        self._networks = networks
        # text → the address it names (or None) and how `peer` shows it
        self._read: dict[str, tuple[Address | None, str]] = {}

    def address(self, text: str) -> Address | None:
        """`address(text)`, remembered."""
        return self._reading(text)[0]

    def _reading(self, text: str) -> tuple[Address | None, str]:
        found = self._read.get(text)
        if found is None:
            ip = address(text)
            found = (ip, text if ip is None else str(ip))
            if len(text) <= LONGEST_ADDRESS:
                if len(self._read) >= REMEMBERED:
                    self._read.clear()  # a flood of new clients: start again, not grow
                self._read[text] = found
        return found

    @property
    def trusts_anyone(self) -> bool:
        """Whether any peer is trusted: with no networks, `trusts` is always False."""
        return bool(self._networks)

    def trusts(self, peer: str) -> bool:
        if not self._networks:
            return False
        return self._inside(self.address(peer))

    def _inside(self, ip: Address | None) -> bool:
        return ip is not None and any(ip in network for network in self._networks)

    def peer(self, scope: Scope) -> str:
        """The direct peer's address as `address` reads it (anything else as it is)."""
        client = scope.get("client")
        if not client:
            return ""
        found = self._read.get(client[0])  # (every request asks: `_reading` without a call)
        return (found or self._reading(str(client[0])))[1]

    def client_ip(self, scope: Scope, headers: Mapping[str, str]) -> str:
        """The first untrusted hop from the right. A hop that names no address (junk, or
        `unknown`) was written by the trusted hop after it: the client is unknown, and
        that proxy is who the request is known to come from, so it counts as the client
        (every such request one client: never a new one each time)."""
        writer = self.peer(scope)
        if not self.trusts(writer):
            return writer
        for hop in reversed(header_list(headers, "x-forwarded-for")):
            if not hop.strip():
                continue
            ip = self.address(hop)
            if ip is None:
                return writer
            writer = str(ip)
            if not self._inside(ip):
                return writer
        return writer

    def public_origin(self, scope: Scope, headers: Mapping[str, str]) -> str:
        """The origin the browser used to reach us (as the trusted proxy forwarded it)."""
        scheme, host = str(scope.get("scheme", "http")), headers.get("host", "")
        if self.trusts(self.peer(scope)):
            # The last hop's value: the one our trusted proxy set or appended.
            scheme = header_list(headers, "x-forwarded-proto")[-1].strip() or scheme
            host = header_list(headers, "x-forwarded-host")[-1].strip() or host
        return f"{scheme}://{host}".lower()


def header_list(headers: Mapping[str, str], name: str) -> list[str]:
    """Every comma-separated item of header `name`, across all its lines, in order.

    Starlette's `Headers` keeps each line (its `get` answers the first only); a plain
    mapping has one value per name. No header at all is `[""]`, so `[-1]` always works.
    """
    lines = headers.getlist(name) if isinstance(headers, Headers) else [headers.get(name, "")]
    return ",".join(lines).split(",")
