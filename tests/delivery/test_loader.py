"""A merchant's own template in place of the vendor's loader page, escaped like autoescape."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.support import EMAIL, UNLIMITED, Proxy
from tests.support.vendors import cookie, neuroon_env
from widget_proxy.settings import Settings


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
