"""The Hissuno provider's page: the loader with the user's token in one attribute."""

from __future__ import annotations

from collections.abc import Callable

from tests.support import EMAIL, UNLIMITED, Proxy
from tests.support.vendors import hissuno_env
from widget_proxy.settings import Settings


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
