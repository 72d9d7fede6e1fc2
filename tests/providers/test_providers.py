"""Token providers: known vectors, rotation, the vendors' own checks, end to end."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from base64 import urlsafe_b64encode
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import jwt
import pytest

from tests.support import UNLIMITED, VALID, Clock, Proxy
from tests.support.redis import forget, require_redis
from widget_proxy.cache import Keys, MemoryStore, RedisStore, Store, TieredStore, TokenCache
from widget_proxy.providers.hissuno import HissunoSettings, HissunoStandIn
from widget_proxy.providers.hissuno.tokens import HissunoTokens
from widget_proxy.providers.neuroon import NeuroonSettings, NeuroonStandIn
from widget_proxy.providers.neuroon.tokens import NeuroonTokens, shop_token
from widget_proxy.security.identity import Identity
from widget_proxy.servers import BackgroundServer
from widget_proxy.settings import Settings, SettingsError
from widget_proxy.upstream.client import HttpClient

SHOP_KEY = "sk_" + "0123456789abcdef" * 2
HISSUNO_KEY = "sk_live_" + "Ab3_-" * 6 + "xy"
EMAIL = "ann@example.com"


def neuroon_env(**extra: str) -> dict[str, str]:
    return {
        "SESSION_SECRET": "s" * 32,
        "TOKEN_PROVIDER": "neuroon",
        "NEUROON_SHOP_ID": "shop-1",
        "NEUROON_API_KEY": SHOP_KEY,
        "NEUROON_SCRIPT_URL": "https://cdn.neuroon.example/widget.js",
        **extra,
    }


def hissuno_env(**extra: str) -> dict[str, str]:
    return {
        "SESSION_SECRET": "s" * 32,
        "TOKEN_PROVIDER": "hissuno",
        "HISSUNO_SECRET_KEY": HISSUNO_KEY,
        "HISSUNO_PROJECT_ID": "proj-1",
        "HISSUNO_SCRIPT_URL": "https://cdn.hissuno.example/widget.js",
        **extra,
    }


# --- settings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        (neuroon_env(NEUROON_API_KEY="sk_0123"), "NEUROON_API_KEY: must be sk_ followed by 32"),
        (neuroon_env(NEUROON_API_KEY="sk_" + "0123456789ABCDEF" * 2), "NEUROON_API_KEY"),
        (neuroon_env(NEUROON_API_KEY=""), "NEUROON_API_KEY: required with TOKEN_PROVIDER=neuroon"),
        (neuroon_env(NEUROON_TOKEN_MODE="remote"), "NEUROON_API_URL: required"),
        (neuroon_env(NEUROON_ROTATE_AFTER="90000"), "NEUROON_ROTATE_AFTER: 90000 s is not less"),
        (neuroon_env(NEUROON_ROTATE_AFTER="86400"), "expired tokens would be served"),
        (neuroon_env(NEUROON_SCRIPT_URL="http://cdn.neuroon.example/w.js"), "plain http"),
        (
            neuroon_env(NEUROON_TOKEN_MODE="remote", NEUROON_API_URL="http://api.neuroon.example"),
            "NEUROON_API_URL: http://api.neuroon.example is plain http",
        ),
        (hissuno_env(HISSUNO_SECRET_KEY="sk_test_" + "a" * 32), "HISSUNO_SECRET_KEY: must be"),
        (hissuno_env(HISSUNO_SECRET_KEY="sk_live_" + "a" * 31), "HISSUNO_SECRET_KEY: must be"),
        (hissuno_env(HISSUNO_SCRIPT_URL=""), "HISSUNO_SCRIPT_URL: required"),
        ({**VALID, "TOKEN_PROVIDER": "acme"}, "TOKEN_PROVIDER: must be one of"),
    ],
)
def test_provider_settings_are_checked(env: dict[str, str], problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        Settings.from_env(env)


def test_other_providers_need_no_returningai_settings() -> None:
    # Only the chosen vendor's group is parsed: Returning.AI's variables, even
    # invalid ones, are neither required nor read, and none of its values is kept.
    stray = {"WIDGET_BASE_URL": "ftp://not-read", "WIDGET_API_KEY": "stray-returningai-key"}
    neuroon = Settings.from_env({**neuroon_env(), **stray})
    hissuno = Settings.from_env({**hissuno_env(), **stray})

    assert isinstance(neuroon.vendor, NeuroonSettings)
    assert isinstance(hissuno.vendor, HissunoSettings)
    for settings in (neuroon, hissuno):
        assert not hasattr(settings.vendor, "base_url")
        assert "stray-returningai-key" not in settings.secrets


def test_provider_keys_are_secrets() -> None:
    for env, key in ((neuroon_env(), SHOP_KEY), (hissuno_env(), HISSUNO_KEY)):
        settings = Settings.from_env(env)
        assert key not in repr(settings)
        assert key in settings.secrets


# --- Neuroon ------------------------------------------------------------------------


def test_neuroon_token_matches_its_definition() -> None:
    shop, ts = "shop-1", 1_795_000_000
    signature = hmac.new(SHOP_KEY.encode(), f"{shop}:{ts}".encode(), hashlib.sha256).hexdigest()
    padded = urlsafe_b64encode(f"{shop}:{ts}:{signature}".encode()).decode()
    by_hand = padded.rstrip("=")

    assert shop_token(shop, SHOP_KEY, ts) == by_hand
    assert padded.endswith("=")  # this vector needs padding, so the no-padding rule is tested
    assert "=" not in shop_token(shop, SHOP_KEY, ts)


def neuroon_cache(clock: Clock, store: Store, **env: str) -> tuple[TokenCache, NeuroonTokens]:
    settings = Settings.from_env(neuroon_env(**env))
    group = settings.vendor
    assert isinstance(group, NeuroonSettings)
    issuer = NeuroonTokens(
        HttpClient(),
        shop_id=group.shop_id,
        api_key=group.api_key,
        rotate_after=group.rotate_after,
        clock=clock,
    )
    tokens = TokenCache(store, issuer, margin=settings.token_refresh_margin, clock=clock)
    return tokens, issuer


async def shop_token_for(tokens: TokenCache, email: str) -> str:
    identity = Identity(email)
    key = tokens.key(identity)
    return tokens.cached(key) or await tokens.fetch(key, identity)


@pytest.fixture(params=["memory", "redis"])
def shared_store(request: pytest.FixtureRequest, clock: Clock) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore(1000, clock=clock)
        return
    url, prefix = require_redis(), f"wp-test-{secrets.token_hex(4)}:"
    yield TieredStore(
        MemoryStore(1000, clock=clock),
        RedisStore(url, secret="s" * 32, prefix=prefix, clock=clock),
        where=url,
    )
    forget(url, prefix)


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.now = float(int(time.time()))  # Neuroon's own check runs on the real clock
    return clock


@pytest.mark.anyio
async def test_neuroon_rotation_one_issue_per_shop(clock: Clock, shared_store: Store) -> None:
    tokens, _ = neuroon_cache(clock, shared_store)
    start = clock.now
    issued: set[str] = set()
    try:
        await rotate(tokens, clock, start, issued)
    finally:
        await shared_store.aclose()  # its connections belong to this test's event loop

    assert len(issued) == 3  # at 0 h, 23 h and 46 h


async def rotate(tokens: TokenCache, clock: Clock, start: float, issued: set[str]) -> None:
    first = await asyncio.gather(*(shop_token_for(tokens, f"u{i}@x.io") for i in range(200)))
    assert len(set(first)) == 1  # one token for every user of the shop
    for hours in range(1, 49):
        clock.now = start + hours * 3600 - 1
        token = await shop_token_for(tokens, EMAIL)
        issued.add(token)
        age = clock.now - int(token_timestamp(token))
        assert age < 24 * 3600  # never served older than 24 h
        assert age < 23 * 3600 + 1  # re-issued after 23 h


def token_timestamp(token: str) -> str:
    from base64 import urlsafe_b64decode

    return urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().split(":")[1]


@pytest.fixture
def neuroon(upstream: str) -> Iterator[tuple[NeuroonStandIn, str]]:
    vendor = NeuroonStandIn(shop_id="shop-1", api_key=SHOP_KEY)
    with BackgroundServer(vendor.app(), timeout_graceful_shutdown=1) as server:
        yield vendor, server.url


def search(url: str, token: str | None, origin: str | None = None) -> httpx2.Response:
    headers = {"origin": origin} if origin is not None else {}
    if token is not None:
        headers["x-widget-token"] = token
    return httpx2.get(f"{url}/api/widget/search", params={"q": "shoes"}, headers=headers)


def test_neuroon_stand_in_checks_tokens(neuroon: tuple[NeuroonStandIn, str]) -> None:
    _vendor, url = neuroon
    now = int(time.time())
    good = shop_token("shop-1", SHOP_KEY, now)
    cases = {
        "good": (good, 200),
        "missing": (None, 401),
        "tampered": (shop_token("shop-1", "sk_" + "f" * 32, now), 401),
        "other shop": (shop_token("shop-2", SHOP_KEY, now), 401),
        "older than 24 h": (shop_token("shop-1", SHOP_KEY, now - 24 * 3600 - 5), 401),
        "garbage": ("bm90IGEgdG9rZW4", 401),
    }
    for name, (token, status) in cases.items():
        response = search(url, token)
        assert response.status_code == status, name
        if status == 401:
            assert set(response.json()) == {"timestamp", "status", "error", "message", "path"}


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        (None, 200),
        ("", 200),
        ("http://localhost:5173", 200),
        ("https://app.localhost", 200),
        ("http://127.0.0.1:8000", 200),
        ("https://shop.neuroon.ai", 200),
        ("https://shop.example", 200),  # the shop URL
        ("https://partner.example", 200),  # an allowed origin
        ("https://evil.example", 403),
        ("https://neuroon.ai.evil.example", 403),
    ],
)
def test_neuroon_stand_in_checks_origins(
    neuroon: tuple[NeuroonStandIn, str], origin: str | None, status: int
) -> None:
    vendor, url = neuroon
    vendor.shop_url, vendor.allowed_origins = "https://shop.example", ("https://partner.example",)

    response = search(url, shop_token("shop-1", SHOP_KEY, int(time.time())), origin)

    assert response.status_code == status


def test_neuroon_stand_in_rate_limits_the_shop(neuroon: tuple[NeuroonStandIn, str]) -> None:
    vendor, url = neuroon
    vendor.rate_limit = 2
    token = shop_token("shop-1", SHOP_KEY, int(time.time()))
    if time.time() % 60 > 57:
        time.sleep(3)  # keep the three requests inside one minute

    statuses = [search(url, token).status_code for _ in range(2)]
    limited = search(url, token)

    assert statuses == [200, 200]
    assert limited.status_code == 429
    body = limited.json()
    assert body["error"] == "rate_limit_exceeded"
    assert body["limit"] == 2
    assert body["remaining"] == 0
    assert int(limited.headers["retry-after"]) == body["retryAfter"] > 0


def test_neuroon_remote_mode_asks_the_api_once_per_shop(
    make_proxy: Callable[..., Proxy], neuroon: tuple[NeuroonStandIn, str]
) -> None:
    vendor, url = neuroon
    proxy = make_proxy(
        settings=Settings.from_env(
            {**neuroon_env(NEUROON_TOKEN_MODE="remote", NEUROON_API_URL=url), **UNLIMITED}
        )
    )

    tokens = {proxy.client.post("/widget/token", headers=cookie(proxy, f"u{i}@x.io")).json()[
        "token"] for i in range(5)}  # fmt: skip

    assert len(tokens) == 1
    assert vendor.calls["token_issue"] == 1
    assert search(url, tokens.pop()).status_code == 200


def test_neuroon_remote_key_refused_is_a_502(
    make_proxy: Callable[..., Proxy], neuroon: tuple[NeuroonStandIn, str]
) -> None:
    vendor, url = neuroon
    env = neuroon_env(NEUROON_TOKEN_MODE="remote", NEUROON_API_URL=url)
    env["NEUROON_API_KEY"] = "sk_" + "e" * 32
    proxy = make_proxy(settings=Settings.from_env({**env, **UNLIMITED}))

    response = proxy.client.post("/widget/token", headers=cookie(proxy, EMAIL))

    assert response.status_code == 502
    assert response.json()["error"] == "upstream_rejected_key"
    assert vendor.calls["token_issue"] == 1  # refused by the stand-in itself, never retried


def cookie(proxy: Proxy, email: str, **session: object) -> dict[str, str]:
    return proxy.cookie({"email": email, **session})


def test_neuroon_page_carries_the_escaped_token_in_the_loader(
    make_proxy: Callable[..., Proxy],
) -> None:
    proxy = make_proxy(settings=Settings.from_env({**neuroon_env(), **UNLIMITED}))

    page = proxy.client.get("/widget", headers=cookie(proxy, EMAIL))
    token = proxy.client.post("/widget/token", headers=cookie(proxy, EMAIL)).json()["token"]

    assert page.status_code == 200
    assert '<div id="neuroon-search"></div>' in page.text
    assert (
        '<script src="https://cdn.neuroon.example/widget.js" '
        f'data-token="{token}" data-container="#neuroon-search" data-theme="auto"></script>'
    ) in page.text
    assert page.headers["cache-control"] == "no-store"
    assert proxy.client.get("/widget/store/x", headers=cookie(proxy, EMAIL)).status_code == 404


def test_a_merchant_template_replaces_the_loader(
    make_proxy: Callable[..., Proxy], tmp_path: Path
) -> None:
    template = tmp_path / "mine.html"
    template.write_text('<p class="{{ color }}">mine <i data-t="{{ token }}"></i></p>')
    settings = Settings.from_env({**neuroon_env(WIDGET_TEMPLATE=str(template)), **UNLIMITED})
    proxy = make_proxy(settings=settings)

    page = proxy.client.get("/widget?color=dark", headers=cookie(proxy, EMAIL))

    assert page.text.startswith('<p class="dark">mine <i data-t="')


def test_template_delivery_escapes_like_autoescape() -> None:
    from markupsafe import escape

    from widget_proxy.delivery.loader import TemplatePage

    page = TemplatePage((b'<i data-a="', b'"></i><b>', b"</b>"))
    hostile = '"><script>x</script>&'

    rendered = page.render(hostile).decode()

    assert rendered == f'<i data-a="{escape(hostile)}"></i><b>{escape(hostile)}</b>'
    assert "<script>" not in rendered


# --- Hissuno ------------------------------------------------------------------------


def hissuno_token(clock_now: float, identity: Identity, **env: str) -> str:
    settings = Settings.from_env(hissuno_env(**env))
    group = settings.vendor
    assert isinstance(group, HissunoSettings)
    issuer = HissunoTokens(
        secret=group.secret_key,
        keys=Keys(settings.session_secret.reveal()),
        ttl=group.token_ttl,
        margin=settings.token_refresh_margin,
        clock=Clock(clock_now),
    )
    return asyncio.run(issuer.issue(identity)).token


def test_hissuno_claims() -> None:
    now = float(int(time.time()))
    identity = Identity(EMAIL, user_id="u-42", metadata=(("name", "Ann"), ("email", EMAIL)))

    token = hissuno_token(now, identity)
    claims = jwt.decode(token, HISSUNO_KEY, algorithms=["HS256"])

    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert claims["userId"] == "u-42"
    assert claims["userMetadata"] == {"name": "Ann", "email": EMAIL}
    assert claims["iat"] == now
    assert claims["exp"] - claims["iat"] == 24 * 3600


def test_hissuno_user_id_falls_back_to_the_email() -> None:
    claims = jwt.decode(
        hissuno_token(time.time(), Identity(EMAIL)), HISSUNO_KEY, algorithms=["HS256"]
    )

    assert claims["userId"] == EMAIL
    assert "userMetadata" not in claims


@pytest.mark.parametrize(("past_exp", "accepted"), [(59, True), (61, False)])
def test_hissuno_leeway(past_exp: int, accepted: bool) -> None:
    ttl = 3600
    token = hissuno_token(time.time() - ttl - past_exp, Identity(EMAIL), HISSUNO_TOKEN_TTL=str(ttl))
    vendor = HissunoStandIn(project_id="proj-1", secret_key=HISSUNO_KEY)

    _claims, problem = vendor.verify(token)

    assert (problem is None) is accepted
    if not accepted:
        assert problem == "Token expired"


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        (jwt.encode({"exp": time.time() + 24 * 3600}, HISSUNO_KEY, algorithm="HS256"),
         "Token missing required userId field"),
        (jwt.encode({"userId": "u", "exp": time.time() + 24 * 3600}, "sk_live_" + "z" * 32,
                    algorithm="HS256"), "Invalid token"),
        ("not.a.jwt", "Invalid token"),
    ],
)  # fmt: skip
def test_hissuno_stand_in_refusals(token: str, problem: str) -> None:
    vendor = HissunoStandIn(project_id="proj-1", secret_key=HISSUNO_KEY)

    assert vendor.verify(token)[1] == problem


@pytest.mark.parametrize(
    ("allowed", "origin", "ok"),
    [
        ((), "https://anything.example", True),  # empty list: development mode
        (("https://shop.example",), "https://SHOP.example:8443", True),  # host only
        (("*.example.org",), "https://a.b.example.org", True),
        (("*.example.org",), "https://example.org", True),  # the wildcard takes the bare domain
        (("*.example.org",), "https://example.org.evil.io", False),
        (("*.example.org",), "https://evilexample.org", False),
        (("shop.example",), "https://evil.example", False),
    ],
)
def test_hissuno_origin_rules(allowed: tuple[str, ...], origin: str, ok: bool) -> None:
    vendor = HissunoStandIn(project_id="p", secret_key=HISSUNO_KEY, allowed_origins=allowed)

    assert vendor.origin_allowed(origin) is ok


def test_hissuno_blocked_origin_answer() -> None:
    vendor = HissunoStandIn(
        project_id="p", secret_key=HISSUNO_KEY, allowed_origins=("shop.example",)
    )
    with BackgroundServer(vendor.app()) as server:
        response = httpx2.post(
            f"{server.url}/api/widget/session",
            json={"widgetToken": "x"},
            headers={"origin": "https://evil.example"},
        )

    assert response.status_code == 403
    assert response.json() == {"error": "Origin not allowed"}


def test_hissuno_session_claims_come_from_the_session(
    make_proxy: Callable[..., Proxy],
) -> None:
    env = hissuno_env(SESSION_USER_ID_KEY="user.id", SESSION_METADATA_KEYS="user.name,email")
    proxy = make_proxy(settings=Settings.from_env({**env, **UNLIMITED}))
    session = {"email": EMAIL, "user": {"id": "u-7", "name": "Ann"}}

    token = proxy.client.post("/widget/token", headers=proxy.cookie(session)).json()["token"]
    page = proxy.client.get("/widget", headers=proxy.cookie(session)).text
    renamed = {**session, "user": {"id": "u-7", "name": "Annie"}}
    second = proxy.client.post("/widget/token", headers=proxy.cookie(renamed)).json()["token"]

    claims = jwt.decode(token, HISSUNO_KEY, algorithms=["HS256"])
    assert claims["userId"] == "u-7"
    assert claims["userMetadata"] == {"name": "Ann", "email": EMAIL}
    assert f'data-widget-token="{token}"' in page
    assert jwt.decode(second, HISSUNO_KEY, algorithms=["HS256"])["userMetadata"]["name"] == "Annie"
    # Plain JSON claims: exactly these, with integer times and string metadata.
    assert set(claims) == {"userId", "iat", "exp", "userMetadata"}
    assert type(claims["iat"]) is int
    assert type(claims["exp"]) is int
    assert all(type(value) is str for value in claims["userMetadata"].values())
