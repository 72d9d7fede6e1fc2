"""Token providers: known vectors, rotation, the vendors' own checks, end to end."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import secrets
import time
from base64 import urlsafe_b64encode
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from starlette.testclient import TestClient

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
from widget_proxy.upstream.keyring import KeyRing

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
        "NEUROON_TOKEN_MODE": "local",  # signed here: nothing to reach (remote has its tests)
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
        (neuroon_env(NEUROON_API_URL="http://api.example.com"), "NEUROON_API_URL: http://api"),
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
        keys=KeyRing(group.api_key),
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


def test_neuroon_stand_in(neuroon: tuple[NeuroonStandIn, str]) -> None:
    """The stand-in itself, once: what the proxy's Neuroon tests lean on."""
    vendor, url = neuroon
    vendor.shop_url, vendor.allowed_origins = "https://shop.example", ("https://partner.example",)
    now = int(time.time())
    good = shop_token("shop-1", SHOP_KEY, now)

    served = search(url, good, "https://partner.example")
    tampered = search(url, shop_token("shop-1", "sk_" + "f" * 32, now))
    old = search(url, shop_token("shop-1", SHOP_KEY, now - 24 * 3600 - 5))
    elsewhere = search(url, good, "https://evil.example")
    vendor.rate_limit = 0  # the next request is over it, whichever minute it falls in
    limited = search(url, good)

    assert served.status_code == 200
    assert (tampered.status_code, old.status_code, elsewhere.status_code) == (401, 401, 403)
    assert set(tampered.json()) == {"timestamp", "status", "error", "message", "path"}
    assert limited.status_code == 429
    body = limited.json()
    assert (body["error"], body["limit"], body["remaining"]) == ("rate_limit_exceeded", 0, 0)
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
        '<script src="https://cdn.neuroon.example/widget.js"\n    data-token="'
        f'{token}" data-container="#neuroon-search" data-theme="auto" data-position="inline"'
        ' data-api-url="https://api.neuroon.ai" async></script>'
    ) in page.text
    assert "integrity" not in page.text  # only with NEUROON_SCRIPT_INTEGRITY
    assert page.headers["cache-control"] == "no-store"
    assert proxy.client.get("/widget/store/x", headers=cookie(proxy, EMAIL)).status_code == 404


def test_neuroon_loader_options_reach_the_tag(make_proxy: Callable[..., Proxy]) -> None:
    sri = "sha384-JTaG/IN0Jj/ImfUj2x5QVMG4HkbFHzui7fTpLtwl1hsP+kY9W8OODeSJRFWN1ZP5"
    env = neuroon_env(
        NEUROON_SCRIPT_INTEGRITY=sri,
        NEUROON_THEME="dark",
        NEUROON_LOCALE="es",
        NEUROON_POSITION="floating",
    )
    proxy = make_proxy(settings=Settings.from_env({**env, **UNLIMITED}))

    tag = re.search(r"<script src=[^>]*>", proxy.client.get("/widget").text)

    assert tag is not None
    attributes = dict(re.findall(r'([a-z-]+)="([^"]*)"', tag.group(0)))
    assert attributes["integrity"] == sri
    assert attributes["crossorigin"] == "anonymous"  # SRI on a cross-origin script needs CORS
    assert (attributes["data-theme"], attributes["data-locale"]) == ("dark", "es")
    assert attributes["data-position"] == "floating"


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


CHAT = "/api/integrations/widget/chat"
HELLO = [{"role": "user", "content": "hello"}]


def user_jwt(claims: dict[str, object], key: str = HISSUNO_KEY) -> str:
    return jwt.encode({"exp": int(time.time()) + 3600, **claims}, key, algorithm="HS256")


def sse_events(text: str) -> list[dict[str, Any]]:
    """The events of a Hissuno stream: each is `event: message`, its type in the data."""
    events = []
    for block in filter(None, text.split("\n\n")):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        assert lines["event"] == "message"
        events.append(json.loads(lines["data"]))
    return events


ORIGIN = "https://shop.example"


def test_hissuno_stand_in() -> None:
    """The stand-in itself, once: what the proxy's Hissuno tests lean on."""
    vendor = HissunoStandIn(
        project_id="proj-1", secret_key=HISSUNO_KEY, allowed_origins=("shop.example",)
    )
    token = user_jwt({"userId": "u-42"})
    body = {"messages": HELLO, "projectId": "proj-1", "userId": "someone-else",
            "widgetToken": token}  # fmt: skip
    here = {"origin": ORIGIN}

    with TestClient(vendor.app()) as client:
        settings = client.get("/api/integrations/widget?projectId=proj-1", headers=here)
        elsewhere = client.post(CHAT, json=body, headers={"origin": "https://evil.example"})
        tokenless = client.post(CHAT, json={**body, "widgetToken": ""}, headers=here)
        started = client.post(CHAT, json=body, headers=here)
        query = {"projectId": "proj-1", "sessionId": started.json()["sessionId"]}
        stream = client.get(f"{CHAT}/stream", params=query, headers=here)

    assert settings.json()["tokenRequired"] is True
    assert (elsewhere.status_code, elsewhere.json()) == (403, {"error": "Origin not allowed"})
    assert (tokenless.status_code, tokenless.json()) == (401, {"error": "Widget token is required"})
    assert started.status_code == 201
    assert vendor.last_user_id == "u-42"  # the token's user, not the body's
    events = sse_events(stream.text)
    assert [e["type"] for e in events] == [
        "connected", "message-start", "message-chunk", "message-complete",
    ]  # fmt: skip
    assert events[2]["content"] == "Hi, u-42! How can we help?"
    expired = user_jwt({"userId": "u", "exp": int(time.time()) - 61})  # past the 60 s leeway
    assert vendor.token_problem(expired) == "Token expired"


def test_hissuno_stand_in_points_the_proxy_at_itself() -> None:
    vendor = HissunoStandIn(project_id="p", secret_key=HISSUNO_KEY)
    env = vendor.proxy_env("http://127.0.0.1:9")

    group = Settings.from_env({**env, "SESSION_SECRET": "s" * 32}).vendor

    assert isinstance(group, HissunoSettings)
    assert group.api_url == "http://127.0.0.1:9/api/integrations/widget/chat"
    assert group.script_url == "http://127.0.0.1:9/widget.js"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", None),  # the widget's default
        ("https://hissuno.example/api/integrations/widget/chat/", None),
        ("hissuno.example/chat", "HISSUNO_API_URL: must be an http(s) URL"),
        ("http://hissuno.example/api/integrations/widget/chat", "HISSUNO_API_URL: http://"),
    ],
)
def test_hissuno_api_url_setting(value: str, problem: str | None) -> None:
    env = hissuno_env(HISSUNO_API_URL=value)
    if problem is None:
        group = Settings.from_env(env).vendor
        assert isinstance(group, HissunoSettings)
        assert group.api_url == value.rstrip("/")
        return
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems


def test_hissuno_loader_page(make_proxy: Callable[..., Proxy]) -> None:
    api = "https://hissuno.example/api/integrations/widget/chat"
    proxy = make_proxy(
        settings=Settings.from_env({**hissuno_env(HISSUNO_API_URL=api), **UNLIMITED})
    )
    session = {"email": EMAIL}

    page = proxy.client.get("/widget", headers=proxy.cookie(session)).text
    token = proxy.client.post("/widget/token", headers=proxy.cookie(session)).json()["token"]

    assert f'data-api-url="{api}"' in page
    assert 'data-project-id="proj-1"' in page
    assert page.count(token) == 1  # in data-widget-token alone, never in a script
    assert page.index('data-widget-token="') < page.index("<script")
    assert page.index("widgetProxy.renew(") < page.index(
        '<script src="https://cdn.hissuno.example/widget.js" defer>'
    )


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
