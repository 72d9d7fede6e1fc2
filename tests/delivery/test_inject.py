"""Finding the placeholder, splitting the page, and the script-safe token literal."""

from __future__ import annotations

import json

import pytest

from widget_proxy.delivery.inject import js_string, split_page
from widget_proxy.errors import UpstreamBadResponse

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.sig"


def page(script: str, *, head: str = "<head>") -> str:
    return f"<!doctype html><html>{head}<script>{script}</script></head><body></body></html>"


@pytest.mark.parametrize(
    "script",
    [
        'window.__WIDGET_INIT__ = { token: "", widgetId: "1" };',
        "window.__WIDGET_INIT__={token:''};",
        'window.__WIDGET_INIT__ = { "token": "" };',
        "window.__WIDGET_INIT__ = {'token' : '' };",
        'window.__WIDGET_INIT__ =\n  {\n\ttoken :\n\t"",\n  };',
        'window.__WIDGET_INIT__ = { a: {token: "x"}, token: "" };',
        'window.__WIDGET_INIT__ = { /* token: "" */ b: 1, // token: ""\n token: "" };',
        'window.__WIDGET_INIT__ = { s: "token: \\"\\"", list: [1, {token: ""}], token: "" };',
        'var other = { token: "" };\nwindow.__WIDGET_INIT__ = { token: "" };',
        'window . __WIDGET_INIT__ = { token: "", extra: `tpl ${1}` };',
    ],
)
def test_finds_the_one_empty_token(script: str) -> None:
    split = split_page(page(script))

    html = split.render(TOKEN).decode()

    assert html.count(TOKEN) == 1
    assert json.dumps(TOKEN) in html
    # Nothing but the two-character empty literal was replaced.
    original = page(script)
    assert original.startswith(split.head.decode())
    assert original.endswith(split.tail.decode())
    assert len(split.head) + len(split.tail) == len(original.encode()) - 2


@pytest.mark.parametrize(
    ("html", "reason"),
    [
        ("<html><body>no script</body></html>", "placeholder missing"),
        (page('window.__WIDGET_INIT__ = { token: "already" };'), "placeholder missing"),
        (page('window.__WIDGET_INIT__ = { user: { token: "" } };'), "placeholder missing"),
        (page('window.__WIDGET_INIT__ = { note: "token: \'\'" };'), "placeholder missing"),
        (page('window.__OTHER__ = { token: "" };'), "placeholder missing"),
        (page('window.__WIDGET_INIT__ = { tokens: "" };'), "placeholder missing"),
        (page('window.__WIDGET_INIT__ = { token: "" ;'), "placeholder missing"),
        ('<script src="x.js">window.__WIDGET_INIT__ = { token: "" };</script>',
         "placeholder missing"),
        ('<!-- <script>window.__WIDGET_INIT__ = { token: "" }</script> -->'
         '<script>window.__WIDGET_INIT__ = { token: "" }</script>', "2 token placeholders"),
        (page('window.__WIDGET_INIT__={token:""};window.__WIDGET_INIT__={token:""};'),
         "2 token placeholders"),
    ],
)  # fmt: skip
def test_refuses_pages_without_exactly_one_placeholder(html: str, reason: str) -> None:
    with pytest.raises(UpstreamBadResponse, match=reason):
        split_page(html)


def test_render_is_a_plain_concatenation() -> None:
    split = split_page(page('window.__WIDGET_INIT__ = { token: "" };'))

    assert split.render("abc") == split.head + b'"abc"' + split.tail


@pytest.mark.parametrize(
    "token",
    [
        "</script><script>alert(1)</script>",
        "<!--",
        "a\u2028b\u2029c",
        "quote\" and 'single' and \\backslash",
        "&amp; <b>",
        "emoji 🎉 and NUL \x00",
        "",
    ],
)
def test_js_string_is_inert_and_exact(token: str) -> None:
    literal = js_string(token)

    assert json.loads(literal) == token
    for unsafe in ("<", ">", "&", "\u2028", "\u2029"):
        assert unsafe not in literal
    assert literal.isascii()


def test_base_href_is_added_after_head() -> None:
    html = page('window.__WIDGET_INIT__ = { token: "" };', head='<head lang="x">')

    out = split_page(html, base_href="https://w.example/store/1?color=dark&x=1").render("t")

    assert out.decode().startswith(
        '<!doctype html><html><head lang="x"><base href="https://w.example/store/1?color=dark&amp;x=1">'
    )


def test_base_href_without_head_goes_after_html_or_first() -> None:
    without_head = '<html><script>window.__WIDGET_INIT__={token:""}</script></html>'
    bare = '<script>window.__WIDGET_INIT__={token:""}</script>'

    assert split_page(without_head, base_href="https://w/").head.startswith(
        b'<html><base href="https://w/">'
    )
    assert split_page(bare, base_href="https://w/").head.startswith(b'<base href="https://w/">')


def test_an_existing_base_is_kept() -> None:
    html = page('window.__WIDGET_INIT__ = { token: "" };', head='<head><base href="/own/">')

    out = split_page(html, base_href="https://w.example/").render("t").decode()

    assert out.count("<base") == 1
    assert '<base href="/own/">' in out


def test_the_last_token_key_wins_as_in_javascript() -> None:
    with pytest.raises(UpstreamBadResponse, match="placeholder missing"):
        split_page(page('window.__WIDGET_INIT__ = { token: "", token: "set" };'))
    assert split_page(page('window.__WIDGET_INIT__ = { token: "set", token: "" };'))
