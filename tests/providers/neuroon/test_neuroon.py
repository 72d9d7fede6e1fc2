"""The Neuroon provider's page: the loader tag with the shop token and its options."""

from __future__ import annotations

import re
from collections.abc import Callable

from tests.support import EMAIL, UNLIMITED, Proxy
from tests.support.vendors import cookie, neuroon_env
from widget_proxy.settings import Settings


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
