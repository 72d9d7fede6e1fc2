"""Finding the placeholder, splitting the page, and the script-safe token literal."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

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
        ('<script>window.__WIDGET_INIT__ = { token: "" }</script>'
         '<!-- --><script>window.__WIDGET_INIT__ = { token: "" }</script>', "2 token placeholders"),
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


# --- Only code counts: a placeholder is never taken from a string, comment or literal ---

REAL = 'window.__WIDGET_INIT__ = { token: "" };'
DECOY = "window.__WIDGET_INIT__ = { token: '' }"  # fits in "…", `…`, /…/ and comments
DECOY_DQ = 'window.__WIDGET_INIT__ = { token: "" }'  # fits in '…'

# Vendor pages with a decoy where it is not code; the old regex scanner took each one
# for a placeholder, but for `<script src="/x.js">`.
DECOYS = {
    "template literal": page(f"var t = `{DECOY}`;"),
    "template literal, between ${}": page(f"var t = `${{1}} {DECOY} ${{2}}`;"),
    "single-quoted string": page(f"var s = '{DECOY_DQ}';"),
    "double-quoted string": page(f'var s = "{DECOY}";'),
    "line comment": page(f"// {DECOY}\n"),
    "block comment": page(f"/* {DECOY} */"),
    "regular expression": page(f"var r = /{DECOY}/;"),
    "regular expression in the object": page(
        'window.__WIDGET_INIT__ = { re: /,token: "" }/, token: "set" };'
    ),
    "JavaScript's <!-- comment": page(f"x = 1 <!-- {DECOY}\n"),
    "JavaScript's --> comment": page(f"x = 1\n  /* */ --> {DECOY}\n"),
    "hashbang comment": page(f"#!{DECOY}\n"),
    "HTML comment": f"<!-- <script>{DECOY}</script> -->",
    "HTML comment closed by --!>": f"<!-- <script>{DECOY}</script> --!>",
    "<textarea>": f"<textarea><script>{DECOY}</script></textarea>",
    "<title>": f"<title><script>{DECOY}</script></title>",
    "<style>": f"<style><script>{DECOY}</script></style>",
    "<noscript>": f"<noscript><script>{DECOY}</script></noscript>",
    "script data block": f'<script type="text/template">{DECOY}</script>',
    "external script": f'<script src="/x.js">{DECOY}</script>',
    "external script, src without a value": f"<script src>{DECOY}</script>",
    "script with a lookalike end tag": f'<script>s = "</\u017fcript><script>{DECOY}//";</script>',
    "script hidden by <!--<script>": f"<script><!--<script></script>{DECOY}//</script>",
    "SVG script (it decodes entities)": f"<svg><script>&quot; {DECOY} &quot;</script></svg>",
    "script after a <select>": f"<select><style><script>{DECOY}</script></style></select>",
}


def placeholder_at(html: str) -> int:
    """Where split_page put the token, as an offset into `html`."""
    split = split_page(html)
    assert html.encode().startswith(split.head)
    assert html.encode().endswith(split.tail)
    return len(split.head.decode())


@pytest.mark.parametrize("where", DECOYS)
def test_a_decoy_that_is_not_code_is_no_placeholder(where: str) -> None:
    html = DECOYS[where]

    with pytest.raises(UpstreamBadResponse, match="placeholder missing"):
        split_page(html)


@pytest.mark.parametrize("where", DECOYS)
def test_beside_a_decoy_the_real_placeholder_is_found(where: str) -> None:
    # The real one goes first: no script after a <svg> or <select> is scanned.
    html = f"<script>{REAL}</script>" + DECOYS[where]

    assert placeholder_at(html) == html.index('""', html.index(REAL))


def test_a_script_inside_an_html_comment_is_not_a_script() -> None:
    commented = f"<!-- <script>{REAL}</script> --><script>{REAL}</script>"

    assert placeholder_at(commented) == commented.rindex('""')


@pytest.mark.parametrize(
    "script",
    [
        "x = (1) / 2 / 3; y = a[0] / b; z = 1.5 / c; " + REAL,
        'if (ok) /"/.test(s); ' + REAL,
        'while (0) /"/g; for (;;) break; ' + REAL,
        'x = typeof /"/; y = a.return / "/"; ' + REAL,
        "n = a++ / 2 / b; m = a\n++/'/.lastIndex; " + REAL,
        'window.__WIDGET_INIT__ = { token: "", re: /}\'"`/, s: `${ {a: `}`} }` };',
        'window.__WIDGET_INIT__ = { a: x => ({ b: [1, (2)] }), token: "" };',
        "<!--\n" + REAL + "\n//-->",
        "s = 'line \\\ncontinued \"'; " + REAL,
        "var \u00e9t\u00e9 = 1 / 2; var e\u0301 = 3 / 4; " + REAL,
    ],
)
def test_code_is_read_as_javascript_reads_it(script: str) -> None:
    assert placeholder_at(page(script)) == page(script).rindex('""')


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ('x = function () {} / "/; ' + DECOY + '; //"; ' + REAL, "a `/` after `}`"),
        ('x = await / "/; ' + DECOY + '; //"; ' + REAL, "a `/` after `await`"),
        ('s = "unterminated\n' + REAL, "string literal never ends"),
        ("t = `unterminated " + REAL, "template literal never ends"),
        ("/* unterminated " + REAL, "comment never ends"),
        ("r = /[/; " + REAL, "regex literal never ends"),
        (REAL + " f(];", "closes nothing"),
        (REAL + " f(", "`(` is never closed"),
    ],
)
def test_a_script_read_with_doubt_has_no_placeholder(script: str, reason: str) -> None:
    with pytest.raises(UpstreamBadResponse, match="placeholder missing") as refused:
        split_page(page(script))
    assert reason in str(refused.value)
    assert "was not scanned" in str(refused.value)


def test_html_comments_are_code_in_a_module() -> None:
    # In a module `<!--` is `<`, `!`, `--`: the template literal is real and the
    # assignment inside it is text. A classic script reads the same text the other way.
    script = "var b = 1; x = a <!--b + `\n" + DECOY_DQ + "\n// `;\n"
    classic = f"<script>{script}</script>"
    module = f'<script type=" Module ">{script}</script>'

    assert placeholder_at(classic) == classic.index('""')
    with pytest.raises(UpstreamBadResponse, match="placeholder missing"):
        split_page(module)


@pytest.mark.parametrize(
    "tag",
    [
        '<script data-src="/x.js">',
        '<script x-src="/x.js" title="src=/y.js">',
        '<script type="text/javascript" language="vbscript">',
        '<script language="JavaScript">',
        '<script type="module">',
        "<SCRIPT\tdefer>",
    ],
)
def test_an_inline_script_is_found_by_its_attributes(tag: str) -> None:
    html = f"{tag}{REAL}</script>"

    assert placeholder_at(html) == html.index('""')


# --- <base>: where it goes and whether the page has one, by real tags only ---------------

BASE = '<base href="https://w/">'


@pytest.mark.parametrize(
    "before",
    [
        "<!-- <head> -->",
        "<!-- <base href='/commented/'> -->",
        '<script>var s = "<head>", b = "<base href=x>";</script>',
        "<title><head><base href=x></title>",
        "<head-x><header>",
        "<?x <head> ?>",
    ],
)
def test_base_goes_after_the_real_head_only(before: str) -> None:
    real_head = f"<!doctype html><html>{before}<head>"
    html = f"{real_head}<script>{REAL}</script></head></html>"

    head = split_page(html, base_href="https://w/").head.decode()

    assert head.count("<base") == 1 + before.count("<base")
    assert head.startswith(real_head + BASE + "<script>")


def test_base_goes_after_html_when_head_is_only_in_a_string() -> None:
    html = f'<html lang="x"><script>var s = "<head>"; {REAL}</script></html>'

    head = split_page(html, base_href="https://w/").head

    assert head.startswith(b'<html lang="x">' + BASE.encode() + b"<script>")


@pytest.mark.parametrize("own", ["<base href=/own/>", "<BASE target=_top>", "<base\nhref='/x/'>"])
def test_a_real_base_of_the_page_is_kept(own: str) -> None:
    html = f"<html><head>{own}<script>{REAL}</script></head></html>"

    out = split_page(html, base_href="https://w/").render("t").decode()

    assert out.lower().count("<base") == 1


# --- Properties ---------------------------------------------------------------------------

# Text that looks like code: fragments of assignments, quotes, comments, brackets, tags.
FRAGMENTS = st.sampled_from(
    [DECOY, DECOY_DQ, REAL, "window.__WIDGET_INIT__ = {", 'token: ""', "token: ''", "}", "{",
     '"', "'", "`", "${", "/*", "*/", "//", "/", "\\", "\n", "\u2028", "<!--", "-->",
     "<script>", "</script>", "<head>", "[", "]", "(", ")", "$", "-"]
)  # fmt: skip
TEXT = st.lists(st.one_of(FRAGMENTS, st.text(max_size=4)), max_size=12).map("".join)


def _escape(text: str, specials: str) -> str:
    """`text` for inside a JavaScript literal: `specials` and line breaks escaped."""
    out = []
    for ch in text:
        if ch == "<":
            out.append("\\x3c")  # no "</script" or "<!--" inside a script
        elif ch in specials or ch == "\\":
            out.append("\\" + ch)
        elif ch in "\n\r\u2028\u2029":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def _no_breaks(text: str) -> str:
    return "".join("\u2424" if ch in "\n\r\u2028\u2029" else ch for ch in text)


# Each puts any text where it is not code, as a whole vendor page (the decoy only). What
# would end the literal or comment is escaped or defused: "< " can't start a tag.
NOT_CODE = {
    "'…'": lambda t: f"<script>x = '{_escape(t, chr(39))}';</script>",
    '"…"': lambda t: f'<script>x = "{_escape(t, chr(34))}";</script>',
    "`…`": lambda t: f"<script>x = `{_escape(t, '`$')}`;</script>",
    "/…/": lambda t: f"<script>x = /a{_escape(t, '/[]')}/g;</script>",
    "// …": lambda t: f"<script>// {_no_breaks(t).replace('<', '< ')}\n</script>",
    "/* … */": lambda t: f"<script>/* {t.replace('/', '|').replace('<', '< ')} */</script>",
    "<!-- … -->": lambda t: f"<!-- {t.replace('-', '_')} -->",
    "<textarea>": lambda t: f"<textarea>{t.replace('</', '< /')}</textarea>",
}


@given(where=st.sampled_from(sorted(NOT_CODE)), text=TEXT)
@example(where="`…`", text=DECOY_DQ)
@example(where="<!-- … -->", text=f"<script>{REAL}</script>")
def test_no_text_in_a_string_comment_or_literal_is_a_placeholder(where: str, text: str) -> None:
    decoy = NOT_CODE[where](text)
    with pytest.raises(UpstreamBadResponse, match="placeholder missing"):
        split_page(decoy)

    before = f"<head>{decoy}<script>"
    html = f"{before}{REAL}</script>{decoy}"
    assert placeholder_at(html) == len(before) + REAL.index('""')


@given(
    token=st.text().map(lambda text: "\u2603" + text),  # never the vendor's own `""`
    decoys=st.lists(st.tuples(st.sampled_from(sorted(NOT_CODE)), TEXT), max_size=3),
)
def test_the_served_page_has_exactly_one_token(token: str, decoys: list[tuple[str, str]]) -> None:
    vendor = "".join(NOT_CODE[where](text) for where, text in decoys)
    before = f"<html><head>{vendor}<script>"
    html = f"{before}{REAL}</script>{vendor}</head></html>"
    literal = js_string(token)

    served = split_page(html).render(token).decode()

    at = len(before) + REAL.index('""')
    assert served == html[:at] + literal + html[at + 2 :]
    assert served.count(literal) == html.count(literal) + 1


REAL = '<script>window.__WIDGET_INIT__ = { token: "" };</script>'


@pytest.mark.parametrize(
    ("html", "why"),
    [
        (f"<!-- {REAL} --!> {REAL}", "`--!>` ends a comment too"),
        (f"<!--> {REAL}", "`<!-->` is a whole, empty comment"),
        (f"<!---> {REAL}", "and so is `<!--->`"),
        (
            '<script>if (a) /"/.test(b); window.__WIDGET_INIT__ = { token: "" };</script>',
            "after `if (…)` a slash starts a regular expression",
        ),
        (
            '<script>while (a) /"/.test(b); window.__WIDGET_INIT__ = { token: "" };</script>',
            "after `while (…)` too",
        ),
        (
            '<script>async function f(ys) { for await (const y of ys) /"/.test(y) }'
            ' window.__WIDGET_INIT__ = { token: "" };</script>',
            "after `for await (…)` too",
        ),
        (
            '<script>var q = a.if(b) / 2 / 3; window.__WIDGET_INIT__ = { token: "" };</script>',
            "after a property named `if`, a slash divides",
        ),
    ],
)
def test_the_scanner_reads_comments_and_slashes_as_the_browser_does(html: str, why: str) -> None:
    page = split_page(html)

    rendered = page.render("T").decode()
    assert rendered.count('"T"') == 1, why
    assert rendered.index('"T"') > rendered.rindex("__WIDGET_INIT__") - 40, why
