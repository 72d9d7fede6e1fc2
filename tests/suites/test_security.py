"""Security guarantees, end to end: origins, the token endpoint, trusted identity
headers and rate limits, through the whole proxy. (The demo's cookie and login form:
tests/demo/test_site.py.)"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx2
import jwt
import pytest

from tests.support import EMAIL, LeakScanner, Proxy, scanning_client, token_in
from widget_proxy.providers.returningai import ReturningAIStandIn
from widget_proxy.settings import Settings

ALLOWED = "https://shop.example.com *.example.org localhost"


def claims(vendor: ReturningAIStandIn, token: str) -> dict[str, object]:
    return dict(jwt.decode(token, vendor.signing_key, algorithms=["HS256"]))


# --- origins ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        (None, 200),  # a top-level navigation carries no Origin
        ("https://shop.example.com", 200),
        ("https://a.b.example.org", 200),
        ("http://localhost:3000", 200),
        ("https://evil.example", 403),
        ("https://shop.example.com.evil.io", 403),
        ("https://evilexample.org", 403),
        ("null", 403),
        ("self", 403),
    ],
)
def test_cross_site_requests_need_an_allowed_origin(
    make_proxy: Callable[..., Proxy], vendor: ReturningAIStandIn, origin: str | None, status: int
) -> None:
    proxy = make_proxy(ALLOWED_ORIGINS=ALLOWED)
    headers = {"origin": origin} if origin is not None else {}

    response = proxy.get("/widget", EMAIL, headers=headers)

    assert response.status_code == status
    if status == 403:
        assert vendor.calls == {}  # refused before anything was sent upstream
        assert "may not use the widget" in response.text


def test_the_proxys_own_origin_is_always_allowed(proxy: Proxy) -> None:
    response = proxy.get("/widget", EMAIL, headers={"origin": proxy.url})

    assert response.status_code == 200


def test_frame_ancestors_default_to_self_plus_allowed_origins(
    make_proxy: Callable[..., Proxy],
) -> None:
    proxy = make_proxy(ALLOWED_ORIGINS=ALLOWED)

    csp = proxy.get("/widget", EMAIL).headers["content-security-policy"]

    assert csp == (
        "frame-ancestors 'self' https://shop.example.com https://*.example.org"
        " localhost:* *.localhost:*"
    )


# --- the token endpoint -----------------------------------------------------------


def test_token_endpoint_shares_the_token_cache(proxy: Proxy, vendor: ReturningAIStandIn) -> None:
    response = proxy.client.post("/widget/token", headers=proxy.cookie({"email": EMAIL}))
    page = proxy.get("/widget", EMAIL)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert claims(vendor, response.json()["token"])["email"] == EMAIL
    assert token_in(page.text) == response.json()["token"]
    assert vendor.calls["signin"] == 1


@pytest.mark.parametrize(
    ("method", "cookie", "origin", "status", "error"),
    [
        ("GET", True, None, 405, "method_not_allowed"),
        ("POST", False, None, 401, "not_authenticated"),
        ("POST", True, "https://evil.example", 403, "origin_not_allowed"),
        ("POST", False, "https://shop.example.com", 401, "not_authenticated"),
    ],
)
def test_token_endpoint_refusals_are_json(
    make_proxy: Callable[..., Proxy],
    vendor: ReturningAIStandIn,
    method: str,
    cookie: bool,
    origin: str | None,
    status: int,
    error: str,
) -> None:
    proxy = make_proxy(ALLOWED_ORIGINS=ALLOWED)
    headers = {"accept": "application/json", **(proxy.cookie({"email": EMAIL}) if cookie else {})}
    if origin:
        headers["origin"] = origin

    response = proxy.client.request(method, "/widget/token", headers=headers)

    assert response.status_code == status
    assert response.json()["error"] == error
    assert vendor.calls["signin"] == 0


def test_token_endpoint_cors_for_allowed_origins_only(make_proxy: Callable[..., Proxy]) -> None:
    proxy = make_proxy(ALLOWED_ORIGINS=ALLOWED)
    shop = "https://shop.example.com"

    preflight = proxy.client.options(
        "/widget/token",
        headers={"origin": shop, "access-control-request-method": "POST"},
    )
    refused = proxy.client.options(
        "/widget/token",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
    )
    call = proxy.client.post(
        "/widget/token", headers={"origin": shop, **proxy.cookie({"email": EMAIL})}
    )

    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == shop
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert preflight.headers["access-control-allow-methods"] == "POST"
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers
    assert call.status_code == 200
    assert call.headers["access-control-allow-origin"] == shop
    assert "Origin" in call.headers["vary"]
    for response in (preflight, refused, call):
        assert response.headers.get("access-control-allow-origin") != "*"


# --- identity from a trusted proxy ------------------------------------------------


@pytest.mark.parametrize(
    ("identity_proxies", "trusted", "status"),
    [
        ("127.0.0.0/8", "", 200),
        ("10.0.0.0/8", "", 401),
        # Trusted for X-Forwarded-For is not trusted to assert who the user is.
        ("10.0.0.0/8", "127.0.0.0/8", 401),
    ],
)
def test_identity_header_is_believed_only_from_identity_proxies(
    make_proxy: Callable[..., Proxy],
    vendor: ReturningAIStandIn,
    identity_proxies: str,
    trusted: str,
    status: int,
) -> None:
    proxy = make_proxy(
        IDENTITY_SOURCE="header", IDENTITY_PROXIES=identity_proxies, TRUSTED_PROXIES=trusted
    )

    response = proxy.client.get("/widget", headers={"x-auth-request-email": EMAIL})

    assert response.status_code == status
    if status == 200:
        assert claims(vendor, token_in(response.text))["email"] == EMAIL
    else:
        assert vendor.calls == {}


def test_an_identity_header_sent_twice_is_refused(
    make_proxy: Callable[..., Proxy], vendor: ReturningAIStandIn
) -> None:
    proxy = make_proxy(IDENTITY_SOURCE="header", IDENTITY_PROXIES="127.0.0.1")
    headers = [
        ("x-auth-request-email", "victim@example.com"),
        ("x-auth-request-email", EMAIL),
        ("accept", "application/json"),
    ]

    response = proxy.client.get("/widget", headers=headers)

    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert "sent 2 times" in response.json()["message"]
    assert vendor.calls == {}


@pytest.mark.parametrize("alias", ["X_Auth_Request_Email", "x-auth-request_email"])
def test_an_underscore_alias_of_the_identity_header_is_never_identity(
    make_proxy: Callable[..., Proxy], vendor: ReturningAIStandIn, alias: str
) -> None:
    """oauth2-proxy's CVE-2025-64484: a client's `X_Auth_Request_Email` passed on by the
    identity proxy. Sent straight from a trusted identity proxy's address, it is ignored."""
    proxy = make_proxy(IDENTITY_SOURCE="header", IDENTITY_PROXIES="127.0.0.1")

    alone = proxy.client.get("/widget", headers={alias: "victim@example.com"})
    beside = proxy.client.get(
        "/widget", headers=[(alias, "victim@example.com"), ("x-auth-request-email", EMAIL)]
    )

    assert alone.status_code == 401
    assert beside.status_code == 200
    assert claims(vendor, token_in(beside.text))["email"] == EMAIL
    assert vendor.calls["signin"] == 1


def test_with_header_identity_the_session_cookie_is_ignored(
    make_proxy: Callable[..., Proxy], vendor: ReturningAIStandIn
) -> None:
    proxy = make_proxy(IDENTITY_SOURCE="header", IDENTITY_PROXIES="127.0.0.1")

    assert proxy.get("/widget", EMAIL).status_code == 401
    assert vendor.calls == {}  # anonymous: nothing was sent upstream


def test_a_bad_email_from_the_trusted_header_is_a_400(
    make_proxy: Callable[..., Proxy], vendor: ReturningAIStandIn
) -> None:
    proxy = make_proxy(IDENTITY_SOURCE="header", IDENTITY_PROXIES="127.0.0.1")

    response = proxy.client.get(
        "/widget", headers={"x-auth-request-email": "no at sign", "accept": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_email"
    assert vendor.calls == {}  # refused before anything was sent upstream


# --- rate limits ------------------------------------------------------------------


def test_per_user_rate_limit(make_proxy: Callable[..., Proxy], vendor: ReturningAIStandIn) -> None:
    proxy = make_proxy(RATE_LIMIT_PER_MINUTE="3")

    statuses = [proxy.get("/widget", EMAIL).status_code for _ in range(3)]
    limited = proxy.get("/widget", EMAIL)
    as_json = proxy.get("/widget", EMAIL, headers={"accept": "application/json"})
    token = proxy.client.post("/widget/token", headers=proxy.cookie({"email": EMAIL}))
    someone_else = proxy.get("/widget", "bob@example.com")

    assert statuses == [200, 200, 200]  # cached after the first: they count all the same
    assert limited.status_code == 429
    # The three just counted leave the one-minute window (of 5 s slots) 60-65 s from now.
    assert 55 <= int(limited.headers["retry-after"]) <= 65
    assert "Too many requests" in limited.text
    assert as_json.json()["error"] == "rate_limited"
    assert token.status_code == 429
    assert someone_else.status_code == 200
    assert vendor.calls["signin"] == 2


def test_per_ip_rate_limit_behind_a_trusted_proxy(make_proxy: Callable[..., Proxy]) -> None:
    proxy = make_proxy(RATE_LIMIT_IP_PER_MINUTE="2", TRUSTED_PROXIES="127.0.0.1")

    def from_ip(ip: str, email: str) -> int:
        return proxy.get("/widget", email, headers={"x-forwarded-for": ip}).status_code

    assert [from_ip("198.51.100.1", f"u{i}@example.com") for i in range(3)] == [200, 200, 429]
    assert from_ip("198.51.100.2", "u9@example.com") == 200  # another client, its own count


@pytest.mark.parametrize(
    "hops",
    [
        ["198.51.100.1:50001", "198.51.100.1:50002", "[::ffff:198.51.100.1]:50003"],
        ["[2001:db8::1]:443", "2001:db8::2", "[2001:db8::3]"],  # one /64
        # No address at all: counted as the trusted proxy that wrote it, one client.
        ["unknown", "garbage-1", "198.51.100.1:port"],
    ],
)
def test_a_port_or_junk_in_a_forwarded_hop_makes_no_new_client(
    make_proxy: Callable[..., Proxy], hops: list[str]
) -> None:
    proxy = make_proxy(RATE_LIMIT_IP_PER_MINUTE="2", TRUSTED_PROXIES="127.0.0.1")

    def from_hop(hop: str, email: str) -> int:
        return proxy.get("/widget", email, headers={"x-forwarded-for": hop}).status_code

    statuses = [from_hop(hop, f"u{i}@example.com") for i, hop in enumerate(hops)]

    assert statuses == [200, 200, 429]
    assert from_hop("203.0.113.9:50001", "u9@example.com") == 200  # its own count


def test_a_client_cant_hide_behind_a_second_x_forwarded_for_line(
    make_proxy: Callable[..., Proxy],
) -> None:
    """A proxy may add the client's address as a line of its own after the client's."""
    proxy = make_proxy(RATE_LIMIT_IP_PER_MINUTE="2", TRUSTED_PROXIES="127.0.0.1")

    def from_ip(claimed: str, real: str, email: str) -> int:
        headers = [
            *proxy.cookie({"email": email}).items(),
            ("x-forwarded-for", claimed),  # the client's own line, a new lie each time
            ("x-forwarded-for", real),  # the trusted proxy's
        ]
        return proxy.client.get("/widget", headers=headers).status_code

    statuses = [from_ip(f"203.0.113.{i}", "198.51.100.1", f"u{i}@example.com") for i in range(3)]

    assert statuses == [200, 200, 429]
    assert from_ip("203.0.113.1", "198.51.100.2", "u9@example.com") == 200


def test_a_client_cant_claim_the_proxys_origin_with_a_forwarded_host_line(
    make_proxy: Callable[..., Proxy], vendor: ReturningAIStandIn
) -> None:
    proxy = make_proxy(ALLOWED_ORIGINS=ALLOWED, TRUSTED_PROXIES="127.0.0.1")
    evil = "http://evil.example"

    def token(host_lines: list[str]) -> httpx2.Response:
        headers = [
            *proxy.cookie({"email": EMAIL}).items(),
            ("origin", evil),
            ("accept", "application/json"),
            *[("x-forwarded-host", line) for line in host_lines],
        ]
        return proxy.client.post("/widget/token", headers=headers)

    spoofed = token(["evil.example", "shop.example.com"])  # the client's line, then ours
    one_line = token(["evil.example"])  # one line: the proxy forwarded the host it got

    assert spoofed.status_code == 403
    assert spoofed.json()["error"] == "origin_not_allowed"
    assert one_line.status_code == 200  # the set-up itself is sound: only the lines differ
    assert vendor.calls["signin"] == 1


def test_per_ip_rate_limit_counts_an_ipv6_client_per_64(make_proxy: Callable[..., Proxy]) -> None:
    proxy = make_proxy(RATE_LIMIT_IP_PER_MINUTE="2", TRUSTED_PROXIES="127.0.0.1")

    def from_ip(ip: str, email: str) -> int:
        return proxy.get("/widget", email, headers={"x-forwarded-for": ip}).status_code

    one_64 = ["2001:db8:1:2::1", "2001:db8:1:2:aaaa::2", "2001:db8:1:2:ffff:1:2:3"]
    statuses = [from_ip(ip, f"u{i}@example.com") for i, ip in enumerate(one_64)]
    mapped = [from_ip(ip, f"m{i}@example.com") for i, ip in enumerate(
        ["::ffff:198.51.100.9", "198.51.100.9", "::ffff:c633:6409"]
    )]  # fmt: skip

    assert statuses == [200, 200, 429]  # a new address of the same /64 is the same client
    assert from_ip("2001:db8:1:3::1", "v@example.com") == 200  # the next /64: another client
    assert mapped == [200, 200, 429]  # IPv4-mapped or not, one IPv4 client


@pytest.mark.slow
def test_rate_limits_are_shared_through_redis(
    make_proxy: Callable[..., Proxy], make_settings: Callable[..., Settings], shared_redis: str
) -> None:
    settings = make_settings(
        CACHE_URL=shared_redis, RATE_LIMIT_PER_MINUTE="4", RATE_LIMIT_SYNC_INTERVAL="0.05"
    )
    one, two = make_proxy(settings), make_proxy(settings)

    statuses = []
    for proxy in (one, two) * 4:
        statuses.append(proxy.get("/widget", EMAIL).status_code)
        time.sleep(0.25)  # a few sync intervals: each process has told Redis its count

    # Alone, each would admit 4 (8 in all). Shared, the limit, plus at most what the
    # other process admitted since this one's view was last synced (one request here).
    assert statuses[:4] == [200] * 4
    assert statuses[-2:] == [429, 429]
    assert 4 <= statuses.count(200) <= 5


# --- one user never gets another's token ----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("store", ["memory", "redis"])
def test_no_user_ever_receives_another_users_token(
    make_proxy: Callable[..., Proxy],
    make_settings: Callable[..., Settings],
    vendor: ReturningAIStandIn,
    leak_scanner: LeakScanner,
    shared_redis: str,
    store: str,
) -> None:
    url = shared_redis if store == "redis" else "memory://"
    settings = make_settings(CACHE_URL=url)
    proxies = [make_proxy(settings), make_proxy(settings)] if store == "redis" else [make_proxy()]
    vendor.signin_delay = 0.02
    emails = [f"user{i}@example.com" for i in range(30)] * 6

    def one(client: httpx2.Client, i: int, email: str) -> tuple[str, str]:
        proxy = proxies[i % len(proxies)]
        r = client.get(f"{proxy.url}/widget", headers=proxy.cookie({"email": email}))
        return email, token_in(r.text)

    with (
        scanning_client(leak_scanner, timeout=30) as client,
        ThreadPoolExecutor(30) as pool,  # all at once: many users' first views race
    ):
        served = list(pool.map(lambda args: one(client, *args), enumerate(emails)))

    assert len(served) == len(emails)
    for email, token in served:
        assert claims(vendor, token)["email"] == email
    assert vendor.calls["signin"] == 30
