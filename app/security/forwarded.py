"""Who is really on the other end when the proxy sits behind a reverse proxy.

Forwarded headers are believed only from peers inside `TRUSTED_PROXIES`. The client
IP is `X-Forwarded-For` read from the right, skipping trusted proxies only, so a
client can't claim another address by sending the header itself.

A header sent as several lines is one comma-separated list (RFC 9110 §5.3), the lines
in the order received: a proxy may append its hop as a line of its own rather than to
the client's line, so every line is read, never only the first.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(raw: str) -> tuple[Network, ...]:
    """CIDRs (or single addresses), separated by spaces or commas."""
    networks = []
    for entry in raw.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR") from None
    return tuple(networks)


class TrustedProxies:
    def __init__(self, networks: tuple[Network, ...]) -> None:
        self._networks = networks

    def trusts(self, address: str) -> bool:
        if not self._networks:
            return False
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in network for network in self._networks)

    def peer(self, scope: Scope) -> str:
        client = scope.get("client")
        return str(client[0]) if client else ""

    def client_ip(self, scope: Scope, headers: Mapping[str, str]) -> str:
        peer = self.peer(scope)
        if not self.trusts(peer):
            return peer
        hops = [h.strip() for h in header_list(headers, "x-forwarded-for") if h.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop
        return hops[0] if hops else peer

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
