"""Hissuno's user tokens: the claims, the user id, the leeway, values from the session."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import jwt
import pytest

from tests.support import EMAIL, UNLIMITED, Clock, Proxy
from tests.support.vendors import HISSUNO_KEY, hissuno_env
from widget_proxy.cache import Keys
from widget_proxy.providers.hissuno import HissunoSettings, HissunoStandIn
from widget_proxy.providers.hissuno.tokens import HissunoTokens
from widget_proxy.security.identity import Identity
from widget_proxy.settings import Settings


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
