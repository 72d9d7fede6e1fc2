"""Key rotation without downtime, for every vendor whose key is sent to the vendor.

Each case plays the vendor with its own stand-in on a real loopback server. During an
overlap the proxy holds the old key and the next one (`*_NEXT`): a call refused under
the one in use is made once more under the other, which is used from then on; one log
line and the `widget_proxy_key_in_use` gauge say which key that is; `check` tries both.
"""

from __future__ import annotations

import io
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support import EMAIL, UNLIMITED, LeakScanner
from widget_proxy.application import vendor_namespace
from widget_proxy.cache import Keys, MemoryStore, PageCache
from widget_proxy.cache.tokens import JwtLifetime
from widget_proxy.check.checklist import Checklist, Steps
from widget_proxy.demo import demo_settings
from widget_proxy.errors import StepFailed, UpstreamRejectedKey
from widget_proxy.ops.metrics import Metrics
from widget_proxy.providers import PROVIDERS, Parts, StandIn
from widget_proxy.security.identity import Identity
from widget_proxy.servers import BackgroundServer
from widget_proxy.settings import Settings
from widget_proxy.upstream.client import HttpClient

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Rotation:
    provider: str
    key: str  # the setting
    next_key: str
    attribute: str  # the stand-in's field holding the key it accepts
    calls: str  # the stand-in's counter of token calls
    env: tuple[tuple[str, str], ...] = ()

    def new_key(self) -> str:
        if self.provider == "neuroon":
            return "sk_" + secrets.token_hex(16)  # Neuroon's key format
        return "rotated-" + secrets.token_urlsafe(18)


ROTATIONS = [
    Rotation("returningai", "WIDGET_API_KEY", "WIDGET_API_KEY_NEXT", "api_key", "signin"),
    Rotation(
        "returningai-sdk",
        "RETURNINGAI_ACCESS_KEY",
        "RETURNINGAI_ACCESS_KEY_NEXT",
        "access_key",
        "token",
    ),
    Rotation(
        "neuroon",
        "NEUROON_API_KEY",
        "NEUROON_API_KEY_NEXT",
        "api_key",
        "token_issue",
        (("NEUROON_TOKEN_MODE", "remote"),),
    ),
]


@dataclass
class Played:
    rotation: Rotation
    stand_in: StandIn
    url: str


@pytest.fixture(params=ROTATIONS, ids=[r.provider for r in ROTATIONS])
def played(request: pytest.FixtureRequest, leak_scanner: LeakScanner) -> Iterator[Played]:
    rotation: Rotation = request.param
    stand_in = PROVIDERS[rotation.provider].stand_in()
    leak_scanner.add(getattr(stand_in, rotation.attribute))
    with BackgroundServer(stand_in.app(), timeout_graceful_shutdown=1) as server:
        yield Played(rotation, stand_in, server.url)


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    client = HttpClient()
    yield client
    await client.aclose()


def settings(played: Played, leak_scanner: LeakScanner, **keys: str) -> Settings:
    env = {**UNLIMITED, "LOGIN_URL": "", **dict(played.rotation.env), **keys}
    built = demo_settings(played.stand_in, played.url, **env)
    leak_scanner.add(*built.secrets)
    return built


def issuer(played: Played, config: Settings, http: HttpClient, metrics: Metrics) -> Any:
    store = MemoryStore()

    def page_cache(origin: str, fetch: Any) -> PageCache:
        return PageCache(store, fetch, scope=origin)

    parts = Parts(http, Keys("s" * 32), JwtLifetime(), page_cache, metrics=metrics)
    return PROVIDERS[played.rotation.provider].build(config.vendor, parts).tokens


def in_use(metrics: Metrics, setting: str) -> float | None:
    return metrics.registry.get_sample_value("widget_proxy_key_in_use", {"setting": setting})


def visitor() -> Identity:
    return Identity(EMAIL, metadata=(("email", EMAIL),))


async def test_the_next_key_takes_over_once_the_old_one_is_refused(
    played: Played, http: HttpClient, leak_scanner: LeakScanner, caplog: pytest.LogCaptureFixture
) -> None:
    r, vendor = played.rotation, played.stand_in
    old = getattr(vendor, r.attribute)
    new = r.new_key()
    config = settings(played, leak_scanner, **{r.key: old, r.next_key: new})
    leak_scanner.add(new)
    metrics = Metrics()
    tokens = issuer(played, config, http, metrics)

    first = await tokens.issue(visitor())  # the vendor still takes the old key
    assert vendor.token_problem(first.token) is None
    assert (in_use(metrics, r.key), in_use(metrics, r.next_key)) == (1.0, 0.0)

    setattr(vendor, r.attribute, new)  # the merchant activates the new key at the vendor
    vendor.calls.clear()
    with caplog.at_level(logging.WARNING, "widget_proxy"):
        second = await tokens.issue(visitor())
        third = await tokens.issue(visitor())

    assert vendor.token_problem(second.token) is None
    assert vendor.token_problem(third.token) is None
    # One refused call under the old key, then only the new one: no retry per request.
    assert vendor.calls[r.calls] == 3
    assert (in_use(metrics, r.key), in_use(metrics, r.next_key)) == (0.0, 1.0)
    switches = [rec.getMessage() for rec in caplog.records if "key in use" in rec.getMessage()]
    assert switches == [
        f"{r.key} was refused (the upstream rejected the API key (401)); {r.next_key}"
        " was accepted and is the key in use from now on"
    ]


async def test_without_a_next_key_a_refusal_is_not_retried(
    played: Played, http: HttpClient, leak_scanner: LeakScanner
) -> None:
    r, vendor = played.rotation, played.stand_in
    config = settings(played, leak_scanner, **{r.key: r.new_key()})
    tokens = issuer(played, config, http, Metrics())
    vendor.calls.clear()

    with pytest.raises(UpstreamRejectedKey):
        await tokens.issue(visitor())

    assert vendor.calls[r.calls] == 1


async def test_both_keys_refused_is_an_error_after_one_try_each(
    played: Played, http: HttpClient, leak_scanner: LeakScanner
) -> None:
    r, vendor = played.rotation, played.stand_in
    config = settings(played, leak_scanner, **{r.key: r.new_key(), r.next_key: r.new_key()})
    tokens = issuer(played, config, http, Metrics())
    vendor.calls.clear()

    with pytest.raises(UpstreamRejectedKey):
        await tokens.issue(visitor())

    assert vendor.calls[r.calls] == 2


def steps(out: io.StringIO, http: HttpClient) -> Steps:
    return Steps(Checklist(out), http, connect_timeout=2, margin=60, max_ttl=3600, default_ttl=300)


@pytest.mark.parametrize(
    ("old_works", "new_works", "passes", "says"),
    [
        (True, True, True, ["ok", "ok"]),
        (False, True, True, ["warn", "ok"]),  # the vendor retired the old key already
        (True, False, False, ["ok"]),  # the new key would fail the rotation
    ],
)
async def test_check_tries_both_keys(
    played: Played,
    http: HttpClient,
    leak_scanner: LeakScanner,
    old_works: bool,
    new_works: bool,
    passes: bool,
    says: list[str],
) -> None:
    r, vendor = played.rotation, played.stand_in
    accepted = getattr(vendor, r.attribute)
    keys = {
        r.key: accepted if old_works else r.new_key(),
        r.next_key: accepted if new_works else r.new_key(),
    }
    config = settings(played, leak_scanner, **keys)
    out = io.StringIO()

    provider = PROVIDERS[r.provider]
    if passes:
        await provider.check(config.vendor, steps(out, http), EMAIL)
    else:
        with pytest.raises(StepFailed) as failed:
            await provider.check(config.vendor, steps(out, http), EMAIL)
        assert failed.value.hint == f"check {r.next_key}"

    marks = {"✔": "ok", "⚠": "warn", "ok": "ok", "warn": "warn"}
    lines = [
        line
        for line in out.getvalue().splitlines()
        if line.split(" ", 1)[1].startswith(("token issue", "signin"))
    ]
    assert [marks[line.split(" ", 1)[0]] for line in lines] == says
    assert r.key in lines[0]
    if len(lines) > 1:
        assert r.next_key in lines[1]
    for value in keys.values():
        assert value not in out.getvalue()


def test_announcing_the_next_key_keeps_every_cached_token(
    played: Played, leak_scanner: LeakScanner
) -> None:
    r = played.rotation
    keys = Keys("s" * 32)
    current = getattr(played.stand_in, r.attribute)
    new = r.new_key()

    before = vendor_namespace(settings(played, leak_scanner), keys)
    announced = vendor_namespace(settings(played, leak_scanner, **{r.next_key: new}), keys)
    promoted = vendor_namespace(settings(played, leak_scanner, **{r.key: new}), keys)

    assert announced == before  # nothing issued under the current key is thrown away
    assert promoted != before  # a new key in use: nothing made with the old one is served
    assert current != new
