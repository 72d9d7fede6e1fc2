"""The other vendors' settings for tests that build them by hand: keys, environments,
and what a refused environment's problems are; a Neuroon stand-in's search and a session cookie."""

from __future__ import annotations

import secrets

import httpx2
import pytest

from tests.support import VALID, Proxy, fresh_secret
from widget_proxy.settings import Settings, SettingsError

# Keys of the shape each vendor issues (none of them is real), made for this run.
SHOP_KEY = "sk_" + secrets.token_hex(16)
HISSUNO_KEY = "sk_live_" + secrets.token_urlsafe(24)[:32]


def neuroon_env(**extra: str) -> dict[str, str]:
    """A Neuroon configuration that signs its shop token here (`extra` overrides)."""
    return {
        "SESSION_SECRET": VALID["SESSION_SECRET"],
        "TOKEN_PROVIDER": "neuroon",
        "NEUROON_SHOP_ID": "shop-1",
        "NEUROON_API_KEY": SHOP_KEY,
        "NEUROON_SCRIPT_URL": "https://cdn.neuroon.example/widget.js",
        "NEUROON_TOKEN_MODE": "local",  # signed here: nothing to reach (remote has its tests)
        **extra,
    }


def hissuno_env(**extra: str) -> dict[str, str]:
    """A Hissuno configuration (`extra` overrides)."""
    return {
        "SESSION_SECRET": VALID["SESSION_SECRET"],
        "TOKEN_PROVIDER": "hissuno",
        "HISSUNO_SECRET_KEY": HISSUNO_KEY,
        "HISSUNO_PROJECT_ID": "proj-1",
        "HISSUNO_SCRIPT_URL": "https://cdn.hissuno.example/widget.js",
        **extra,
    }


def cookie(proxy: Proxy, email: str, **session: object) -> dict[str, str]:
    """The session cookie of a user signed in as `email`, with `session`'s other values."""
    return proxy.cookie({"email": email, **session})


def search(url: str, token: str | None, origin: str | None = None) -> httpx2.Response:
    """A search on the Neuroon stand-in at `url`, as the widget sends it."""
    headers = {"origin": origin} if origin is not None else {}
    if token is not None:
        headers["x-widget-token"] = token
    return httpx2.get(f"{url}/api/widget/search", params={"q": "shoes"}, headers=headers)


# Each vendor's least configuration (its defaults are tested as they are).
NEUROON = {
    "TOKEN_PROVIDER": "neuroon",
    "SESSION_SECRET": VALID["SESSION_SECRET"],
    "NEUROON_SHOP_ID": "shop-1",
    "NEUROON_API_KEY": "sk_" + secrets.token_hex(16),
}
HISSUNO = {
    "TOKEN_PROVIDER": "hissuno",
    "SESSION_SECRET": VALID["SESSION_SECRET"],
    "HISSUNO_SECRET_KEY": "sk_live_" + secrets.token_urlsafe(24)[:32],
    "HISSUNO_PROJECT_ID": "p-1",
    "HISSUNO_SCRIPT_URL": "https://cdn.example/hissuno.js",
}
SDK = {
    "TOKEN_PROVIDER": "returningai-sdk",
    "SESSION_SECRET": VALID["SESSION_SECRET"],
    "RETURNINGAI_ACCESS_ID": "access-1",
    "RETURNINGAI_ACCESS_KEY": fresh_secret("rai-key-"),
    "RETURNINGAI_COMMUNITY_ID": "community-1",
}


def problems(env: dict[str, str]) -> list[str]:
    """The problems `Settings.from_env` reports for `env`, which it must refuse."""
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    return caught.value.problems
