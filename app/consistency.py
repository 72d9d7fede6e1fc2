"""What no single setting shows: settings that contradict each other, or the chosen
vendor's needs (`Settings.from_env` reports these with every other problem at once),
and what a setting left empty means given the others (`fill_in`)."""

from __future__ import annotations

from typing import Any

from .options import options_of
from .options import parsers as p
from .providers import Provider, VendorSettings
from .security.origins import OriginPolicy


def problems(
    values: dict[str, Any], provider: Provider[Any] | None, group: VendorSettings | None
) -> list[str]:
    """Every such problem among the core settings that parsed (`values`), the chosen
    provider (None: TOKEN_PROVIDER is invalid) and its group (None: it did not parse)."""
    found = []
    if group is not None and provider is not None:
        found += group.problems()
        if not values.get("upstream_allow_http"):
            found += in_clear(group, provider.name)
    found += _cross_check(values)
    if provider is not None:
        found += _anonymous(values, provider)
    if group is not None:
        found += _session_needs(values, group)
    return found


def fill_in(values: dict[str, Any], provider: Provider[Any]) -> None:
    """The defaults that depend on other settings: anonymous visitors where the vendor
    shares one token, and `frame-ancestors` from the allowed origins."""
    if values.get("allow_anonymous") is None:
        values["allow_anonymous"] = provider.anonymous == "shared"
    if not values["frame_ancestors"]:
        policy = OriginPolicy(values["allowed_origins"])
        values["frame_ancestors"] = ("'self'", *policy.csp_sources)


def _cross_check(values: dict[str, Any]) -> list[str]:
    """Problems no single setting shows (among the settings that parsed)."""
    problems = []
    get = values.get
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


def in_clear(group: VendorSettings, vendor: str) -> list[str]:
    """A vendor URL on plain http beyond this machine (in any spelling of the scheme)
    would carry keys or tokens in clear, or put a script anyone on the way may rewrite
    on the shop's pages."""
    return [
        f"{opt.name}: {value} is plain http beyond loopback, so the key, tokens or script"
        " would travel in clear; use https:// (or UPSTREAM_ALLOW_HTTP=true to accept it)"
        for opt in options_of(type(group), vendor)
        if isinstance(value := getattr(group, opt.field), str) and p.plain_http(value)
    ]
