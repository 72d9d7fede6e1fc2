"""split_page in a real Chromium: hostile vendor pages with decoys, hostile tokens.

Each vendor page has the real placeholder and a decoy assignment where it is not code
(the old scanner took every one of them for a placeholder). Served with each hostile
token, the page must hand the vendor's script exactly the token and run none of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.browser import chromium
from widget_proxy.delivery.inject import split_page
from widget_proxy.errors import UpstreamBadResponse
from widget_proxy.servers import BackgroundServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REAL = '<script>window.__WIDGET_INIT__ = { token: "", widgetId: "w1" };</script>'
DECOY = "window.__WIDGET_INIT__ = { token: '' }"  # in "…", `…`, /…/ and comments
DECOY_DQ = 'window.__WIDGET_INIT__ = { token: "" }'  # in '…'

# Where the decoy hides. The real script comes last, so that it is the one the
# browser leaves in window.__WIDGET_INIT__, except after <svg>/<select>, where no
# script is scanned.
DECOYS = {
    "template literal": f"<script>var t = `{DECOY}`;</script>",
    "template literal between ${}": f"<script>var t = `${{1}} {DECOY} ${{2}}`;</script>",
    "single-quoted string": f"<script>var s = '{DECOY_DQ}';</script>",
    "double-quoted string": f'<script>var s = "{DECOY}";</script>',
    "line comment": f"<script>// {DECOY}\n</script>",
    "block comment": f"<script>/* {DECOY} */</script>",
    "regular expression": f"<script>var r = /{DECOY}/;</script>",
    "JavaScript's <!-- comment": f"<script>var x = 1 <!-- {DECOY}\n</script>",
    "JavaScript's --> comment": f"<script>var x = 1\n--> {DECOY}\n</script>",
    "HTML comment": f"<!-- <script>{DECOY}</script> -->",
    "<textarea>": f"<textarea><script>{DECOY}</script></textarea>",
    "<title>": f"<title><script>{DECOY}</script></title>",
    "script data block": f'<script type="text/template">{DECOY}</script>',
    "lookalike end tag": f'<script>var s = "</\u017fcript><script>{DECOY}//";</script>',
    "SVG script (it decodes entities)": f"<svg><script>&quot; {DECOY} &quot;</script></svg>",
}
AFTER_THE_REAL_ONE = {"SVG script (it decodes entities)"}
DECOY_ONLY = {
    **DECOYS,
    "regular expression in the object": (
        '<script>window.__WIDGET_INIT__ = { re: /,token: "" }/, token: "set" };</script>'
    ),
}

PWN = "window.pwned=1"
# Tokens that end strings, templates, comments, regexes or scripts; from a decoy the old
# scanner accepted, `${…}`, `'+…+'`, `+…+`, `*/…/*` and `/;…//` all ran in Chromium.
TOKENS = [
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.sig",
    f"</script><script>{PWN}</script>",
    f"${{{PWN}}}",
    f"`;{PWN};`",
    f"\u2028{PWN}\u2029",
    f'"+({PWN})+"',
    f"'+({PWN})+'",
    f"+({PWN})+",
    f"*/{PWN}/*",
    f"/;{PWN};//",
    f"<!--\n{PWN}\n-->",
    f"\\`${{{PWN}}}\\",
]


def vendor_page(decoy: str, real: str = REAL) -> str:
    return f"<!doctype html><html><head>{decoy}{real}</head><body></body></html>"


class Site:
    """A loopback server that serves whatever bytes are put under a path."""

    def __init__(self) -> None:
        self.pages: dict[str, bytes] = {}

        async def serve(request: Request) -> Response:
            body = self.pages[request.path_params["name"]]
            return Response(body, media_type="text/html; charset=utf-8")

        self.server = BackgroundServer(
            Starlette(routes=[Route("/page/{name}", serve)]), timeout_graceful_shutdown=1
        )

    def put(self, name: str, body: bytes) -> str:
        self.pages[name] = body
        return f"{self.server.url}/page/{name}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    site = Site()
    with site.server:
        yield site


@pytest.mark.parametrize("where", DECOYS)
def test_beside_a_decoy_the_token_arrives_exactly_and_runs_nothing(
    browser: Browser, site: Site, where: str
) -> None:
    first, then = (REAL, DECOYS[where]) if where in AFTER_THE_REAL_ONE else (DECOYS[where], REAL)
    split = split_page(vendor_page(first, then))
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        for i, token in enumerate(TOKENS):
            page.goto(site.put(f"{where}-{i}", split.render(token)))

            assert page.evaluate("window.__WIDGET_INIT__") == {"token": token, "widgetId": "w1"}
            assert page.evaluate("typeof window.pwned") == "undefined"
    finally:
        page.close()
    assert errors == []  # every script parsed: the token broke out of nothing


@pytest.mark.parametrize("where", DECOY_ONLY)
def test_a_page_with_only_a_decoy_is_refused(where: str) -> None:
    with pytest.raises(UpstreamBadResponse, match="placeholder missing"):
        split_page(vendor_page(DECOY_ONLY[where], real=""))


@pytest.mark.parametrize(
    "decoy",
    [
        "<!-- <head> <base href='/commented/'> -->",
        "<script>var s = \"<head><base href='/in-a-string/'>\";</script>",
        "<title><head><base href=/in-a-title/></title>",
    ],
)
def test_base_is_real_and_first_whatever_the_decoys(
    browser: Browser, site: Site, decoy: str
) -> None:
    html = f"<!doctype html><html>{decoy}<head>{REAL}</head><body><a href=x.css>x</a></body>"
    base = f"{site.server.url}/vendor/dir/?a=1&b=2"
    page = browser.new_page()
    try:
        page.goto(site.put(f"base-{len(site.pages)}", split_page(html, base).render("t")))

        assert page.evaluate("document.baseURI") == base
        assert page.evaluate("document.links[0].href") == f"{site.server.url}/vendor/dir/x.css"
        assert page.evaluate("document.querySelectorAll('base').length") == 1
    finally:
        page.close()
