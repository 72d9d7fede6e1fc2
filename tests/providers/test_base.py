"""One behavioural suite, run against every provider in the registry and its page source.

Each case plays the vendor with the provider's own stand-in on a real loopback
server, builds the provider exactly as `create_app` does, and checks what every
vendor must do: issue a token the vendor accepts, key it without personal data,
serve a page that carries it safely, pass its own `check`, and refuse to work with
the wrong secret. A new vendor gets all of this by being registered.
"""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import pytest

from tests.support import EMAIL, UNLIMITED, LeakScanner, Proxy
from widget_proxy import create_app
from widget_proxy.cache import Keys, MemoryStore, PageCache
from widget_proxy.cache.tokens import JwtLifetime
from widget_proxy.check.checklist import Checklist, Steps
from widget_proxy.demo import demo_settings
from widget_proxy.errors import StepFailed, UpstreamRejectedKey
from widget_proxy.options import Secret, options_of
from widget_proxy.providers import PROVIDERS, Parts, Provider, StandIn, Vendor
from widget_proxy.security.identity import Identity
from widget_proxy.servers import BackgroundServer
from widget_proxy.settings import Settings, all_options
from widget_proxy.upstream.client import HttpClient

pytestmark = pytest.mark.anyio

HOSTILE = "</script><script>alert(1)</script>\"'&<!--\u2028"


@dataclass
class Played:
    """A provider, its stand-in on a real server, and settings that point at it."""

    provider: Provider[Any]
    stand_in: StandIn
    url: str
    settings: Settings


@pytest.fixture(params=list(PROVIDERS), scope="module")
def played(request: pytest.FixtureRequest) -> Iterator[Played]:
    provider = PROVIDERS[request.param]
    stand_in = provider.stand_in()
    with BackgroundServer(stand_in.app(), timeout_graceful_shutdown=1) as server:
        settings = demo_settings(stand_in, server.url, **UNLIMITED, LOGIN_URL="")
        yield Played(provider, stand_in, server.url, settings)


@pytest.fixture
def scanned(played: Played, leak_scanner: LeakScanner) -> Played:
    leak_scanner.add(*played.settings.secrets)
    return played


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    client = HttpClient()
    yield client
    await client.aclose()


def parts(http: HttpClient, secret: str = "s" * 32) -> Parts:
    store = MemoryStore()

    def page_cache(origin: str, fetch: Any) -> PageCache:
        return PageCache(store, fetch, scope=origin)

    return Parts(http, Keys(secret), JwtLifetime(), page_cache)


def build(played: Played, http: HttpClient, **overrides: str) -> Vendor:
    settings = played.settings
    if overrides:
        settings = demo_settings(played.stand_in, played.url, **overrides)
    return played.provider.build(settings.vendor, parts(http))


def identity(email: str = EMAIL) -> Identity:
    return Identity(email, metadata=(("email", email),))


# --- the settings group -----------------------------------------------------------


def test_its_settings_are_a_group_of_its_own(played: Played) -> None:
    own = options_of(played.provider.settings, played.provider.name)
    names = [o.name for o in all_options()]

    assert own, "a provider declares its settings"
    assert len(names) == len(set(names)), "no variable is declared twice"
    assert {o.name for o in own} <= set(names)
    key_name, key = played.settings.vendor.key
    assert key_name in {o.name for o in own}
    assert isinstance(key, Secret)
    assert key.reveal() in played.settings.secrets
    assert key.reveal() not in repr(played.settings)


# --- tokens -----------------------------------------------------------------------


async def test_it_issues_a_token_the_vendor_accepts(scanned: Played, http: HttpClient) -> None:
    vendor = build(scanned, http)
    before = time.time()

    entry = await vendor.tokens.issue(identity())

    assert entry.token
    assert scanned.stand_in.token_problem(entry.token) is None
    assert before - 1 <= entry.issued_at <= time.time() + 1
    assert entry.expires_at > time.time()


async def test_its_cache_key_is_stable_and_holds_no_personal_data(
    scanned: Played, http: HttpClient
) -> None:
    first, second = build(scanned, http), build(scanned, http)
    key = first.tokens.cache_key(identity())

    assert key == first.tokens.cache_key(identity())
    assert key == second.tokens.cache_key(identity())  # every process finds the same entry
    assert EMAIL not in key
    assert "ann" not in key


async def test_its_tokens_are_shared_exactly_when_it_says_so(
    scanned: Played, http: HttpClient
) -> None:
    # `anonymous == "shared"` makes the proxy treat its token as everybody's (one caller
    # to the breaker, a failed issue backed off); per-user keys must stay apart, or one
    # user's failing signin would count as everybody's.
    tokens = build(scanned, http).tokens
    keys = {tokens.cache_key(identity(f"user{i}@example.com")) for i in range(3)}

    assert len(keys) == (1 if scanned.provider.anonymous == "shared" else 3)


async def test_a_wrong_secret_is_refused_by_the_vendor(scanned: Played, http: HttpClient) -> None:
    other = scanned.provider.stand_in()  # same vendor, other (random) credentials
    wrong = demo_settings(other, scanned.url)
    vendor = scanned.provider.build(wrong.vendor, parts(http))

    try:
        entry = await vendor.tokens.issue(identity())
    except UpstreamRejectedKey:
        return  # a vendor that issues tokens refuses the key itself
    # A token signed here with the wrong secret is refused where it is used.
    assert scanned.stand_in.token_problem(entry.token) is not None


# --- the page source --------------------------------------------------------------


async def test_its_page_source_serves_the_widget_route(scanned: Played, http: HttpClient) -> None:
    pages = build(scanned, http).pages

    assert pages.paths[0] == "/widget"
    name = pages.select({})
    for color in ("light", "dark"):
        page = await pages.fetch(name, color)
        assert pages.cached(name, color) is not None  # the next view needs no wait
        assert b"a-token-value" in page.render("a-token-value")


async def test_its_pages_carry_any_token_inertly(scanned: Played, http: HttpClient) -> None:
    pages = build(scanned, http).pages
    page = await pages.fetch(pages.select({}), "light")

    body, plain = page.render(HOSTILE).decode(), page.render("plain").decode()

    assert shape(body) == shape(plain)  # the token added no tag, attribute or comment
    for markup in ("<script", "</script", "<!--"):
        assert body.count(markup) == plain.count(markup), markup
    assert body.count("alert(1)") == 1  # the token is in once, as data


class _Shape(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, ...]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append(("start", tag, *(name for name, _ in attrs)))

    def handle_endtag(self, tag: str) -> None:
        self.seen.append(("end", tag))

    def handle_comment(self, data: str) -> None:
        self.seen.append(("comment",))


def shape(html: str) -> list[tuple[str, ...]]:
    """The page's tags, attribute names and comments, as a browser's parser sees them."""
    parser = _Shape()
    parser.feed(html)
    parser.close()
    return parser.seen


# --- through a real proxy ----------------------------------------------------------


def test_the_browser_gets_a_token_the_vendor_accepts(
    scanned: Played, leak_scanner: LeakScanner
) -> None:
    with BackgroundServer(create_app(scanned.settings), timeout_graceful_shutdown=1) as server:
        proxy = Proxy(scanned.settings, server.url, leak_scanner)
        cookie = proxy.cookie({"email": EMAIL})
        try:
            page = proxy.client.get("/widget", headers=cookie)
            answer = proxy.client.post("/widget/token", headers=cookie)
        finally:
            proxy.client.close()

    assert page.status_code == 200
    assert answer.status_code == 200
    token = answer.json()["token"]
    assert scanned.stand_in.token_problem(token) is None
    assert token in page.text  # the same token, from the same cache


# --- widget-proxy check ---------------------------------------------------------------


def checklist(http: HttpClient) -> tuple[Steps, Checklist, io.StringIO]:
    out = io.StringIO()
    lines = Checklist(out)
    steps = Steps(lines, http, connect_timeout=2, margin=60, max_ttl=3600, default_ttl=300)
    return steps, lines, out


async def test_its_check_passes_against_the_vendor(scanned: Played, http: HttpClient) -> None:
    steps, listed, out = checklist(http)

    await scanned.provider.check(scanned.settings.vendor, steps, EMAIL)

    lines = out.getvalue().splitlines()
    assert lines, "a check says what it did"
    assert all(line.startswith(("✔", "ok")) for line in lines), lines
    assert listed.warned == [], "against its vendor, every step proves what it checks"
    for secret in scanned.settings.secrets:
        assert secret not in out.getvalue()


async def test_its_check_fails_a_wrong_secret(scanned: Played, http: HttpClient) -> None:
    """The vendor judges the secret in `check`, however the token is made: one signed
    here with a wrong key fails it as one the vendor refuses to issue does."""
    wrong = demo_settings(scanned.provider.stand_in(), scanned.url)  # other credentials
    steps, _, out = checklist(http)

    with pytest.raises(StepFailed) as failed:
        await scanned.provider.check(wrong.vendor, steps, EMAIL)

    key_name, key = wrong.vendor.key
    assert key_name in failed.value.hint  # the setting to look at
    assert key.reveal() not in out.getvalue() + str(failed.value)
