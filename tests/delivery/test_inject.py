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
        'window.__WIDGET_INIT__ = { token: "", user: token };',  # a value named token
        'window.__WIDGET_INIT__ = { token: "", b: f() || token };',
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
        (page('window.__WIDGET_INIT__ = { token: "", ...token };'), "placeholder missing"),
        (page('window.__WIDGET_INIT__ = { token, "": 1 };'), "placeholder missing"),
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
    "<style> not closed by a look-alike": f"<style></\u017ftyle><script>{DECOY}</script></style>",
    "after <plaintext>": f"<plaintext><script>{DECOY}</script>",
    "bogus comment <?…>": f"<?x <script>{DECOY}</script> ?>",
    "bogus comment <!…>": f"<!x <script>{DECOY}</script> >",
    "bogus comment </…>": f"</ <script>{DECOY}</script> >",
    "<noscript>": f"<noscript><script>{DECOY}</script></noscript>",
    "script data block": f'<script type="text/template">{DECOY}</script>',
    "script in another language": f'<script language="vbscript">{DECOY}</script>',
    "type after a space HTML keeps": f'<script type="\u00a0text/javascript">{DECOY}</script>',
    "type that only begins like JavaScript": f'<script type="text/javascriptX">{DECOY}</script>',
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
        ('x = function () {} / "/; ' + DECOY + '; //"; ' + REAL,
         "a `/` after `}` may divide or start a regex"),
        ('x = await / "/; ' + DECOY + '; //"; ' + REAL,
         "a `/` after `await` may divide or start a regex"),
        ('s = "unterminated\n' + REAL, "a string literal never ends"),
        ("t = `unterminated " + REAL, "a template literal never ends"),
        ("/* unterminated " + REAL, "a comment never ends"),
        ("r = /[/; " + REAL, "a regex literal never ends"),
        (REAL + " f(];", "a `]` closes nothing it opened"),
        (REAL + " f(", "a `(` is never closed"),
    ],
)  # fmt: skip
def test_a_script_read_with_doubt_has_no_placeholder(script: str, reason: str) -> None:
    with pytest.raises(UpstreamBadResponse, match="placeholder missing") as refused:
        split_page(page(script))
    assert str(refused.value).endswith(f"was not scanned: {reason}")


# `/"/; <an assignment with ''>; //"` is a regular expression, code and a comment; read
# as a division, everything from its `"` on is one string. Which one it is shows in
# whether the page has a placeholder; where the tokens can't tell, the script is unread.
SLASH = "/\"/; window.__WIDGET_INIT__ = { token: '' }; //\"\n"


@pytest.mark.parametrize(
    ("script", "module", "reads"),
    [
        ("SLASH", False, "regex"),  # the first token of the script
        ("a SLASH", False, "division"),
        ("a[0] SLASH", False, "division"),
        ("(a) SLASH", False, "division"),  # a `(` that starts the script heads nothing
        ("f(a) SLASH", False, "division"),
        ("x = (a) SLASH", False, "division"),
        ("if (a) SLASH", False, "regex"),
        ("a.if(b) SLASH", False, "division"),  # a property named `if`
        ("a?.if(b) SLASH", False, "division"),
        ("a?.return SLASH", False, "division"),
        ("'s' SLASH", False, "division"),
        ("`t` SLASH", False, "division"),
        ("/x/ SLASH", False, "division"),
        ("a++ SLASH", False, "division"),
        ("a-- SLASH", False, "division"),
        ("a\n++SLASH", False, "regex"),  # a prefix `++` on the next line
        ("async function f(ys) { if (a) b; else for await (const y of ys) SLASH}", False,
         "regex"),
        ("await SLASH", True, "regex"),  # a keyword in a module
        ("await SLASH", False, "a `/` after `await` may divide or start a regex"),
        ("for (const x of SLASH)", True, "a `/` after `of` may divide or start a regex"),
    ],
)  # fmt: skip
def test_a_slash_is_read_by_the_token_before_it(script: str, module: bool, reads: str) -> None:
    kind = ' type="module"' if module else ""
    html = f"<script{kind}>{script.replace('SLASH', SLASH)}</script>"

    if reads == "regex":
        assert placeholder_at(html) == html.index("''")
        return
    with pytest.raises(UpstreamBadResponse, match="placeholder missing") as refused:
        split_page(html)
    if reads == "division":
        assert "not scanned" not in str(refused.value)
    else:
        assert str(refused.value).endswith(f"was not scanned: {reads}")


CODE = "window.__WIDGET_INIT__ = { token: '' }"  # a placeholder, where it is code


@pytest.mark.parametrize(
    ("script", "placeholders"),
    [
        ("--> " + CODE + "\n" + REAL, 1),  # the script's start is a line's start
        ("x = 1 /* */ --> " + CODE + "\n", 1),  # no line break in the comment: code
        ("x = 1 /*\n*/ --> " + CODE + "\n", 0),
        ("x = 1 --> " + CODE, 1),
        ("x = 1 /* " + CODE + " */; " + REAL, 1),
        ('s = "*/"; /* ' + CODE + " */ " + REAL, 1),
        ("/* one */ " + REAL + " /* two */", 1),
        ("/**/ " + REAL + " /* x */", 1),
        ("x = 2 */* " + CODE + " */ 3;\n" + REAL, 1),
        ('/* c */"s"; ' + REAL, 1),
        ("X = 1; " + REAL, 1),
        ("x = `${/'/.source}`; " + REAL, 1),  # a `/` just inside `${` starts a regex
        ("x = `${a}${b}` + " + REAL + "; y = `${ {} }`", 1),
        (REAL + "; " + CODE, 2),
    ],
)
def test_comments_and_line_starts(script: str, placeholders: int) -> None:
    html = page(script)

    if placeholders == 1:
        assert placeholder_at(html) == html.rfind('""' if '""' in script else "''")
        return
    reason = "placeholder missing" if placeholders == 0 else f"{placeholders} token placeholders"
    with pytest.raises(UpstreamBadResponse, match=reason) as refused:
        split_page(html)
    assert "not scanned" not in str(refused.value)


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
        "<script type>",
        "<script type='text/javascript'>",
        "<script type=' module '>",
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


@pytest.mark.slow
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


SCRIPT = f"<script>{REAL}</script>"


@pytest.mark.parametrize(
    ("html", "why"),
    [
        (f"<!-- {SCRIPT} --!> {SCRIPT}", "`--!>` ends a comment too"),
        (f"<!--> {SCRIPT}", "`<!-->` is a whole, empty comment"),
        (f"<!---> {SCRIPT}", "and so is `<!--->`"),
        (f"<!----!> {SCRIPT}", "and `<!----!>`"),
        (f"{SCRIPT}<!-- never closed", "a comment may run to the end of the file"),
        (f'{SCRIPT}<img src="x"', "and so may a tag"),
        (f"<script>s = 'unterminated\n</script>{SCRIPT}", "an unread script hides no other"),
        (
            f"<script><!--<script></script>-->\n{REAL}</script>",
            "`<!--<script>` hides a `</script>`, up to the `-->`",
        ),
        (f"<script><!-->s = '<script>';</script>{SCRIPT}", "`<!-->` hides nothing"),
        (f"<script><!--\n-->\n{REAL}</script>", "a `-->` in a script ends its `<!--`"),
        (f"<!doctype html>1 < 2 {SCRIPT}", "a `<` before a space is text"),
        (f"<?x><script>{REAL}</script>", "a bogus comment ends at its `>`"),
        (f"{SCRIPT}<?never closed", "or at the end of the file"),
        (f"{SCRIPT}<textarea>never closed", "raw text may run to the end of the file"),
        (f"{SCRIPT}<title>x</title ", "and an end tag may never close"),
        (f"<title>x</TITLE>{SCRIPT}", "end tags are case-insensitive"),
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


def test_a_page_without_a_placeholder_is_named_in_the_log() -> None:
    html = f"<script>s = '\n{REAL}</script><p><script>t = `{REAL}</script>"

    with pytest.raises(UpstreamBadResponse) as refused:
        split_page(html)

    first, second = html.index("s = "), html.index("t = ")
    assert str(refused.value) == (
        "the widget page has no empty token in window.__WIDGET_INIT__ (placeholder missing)"
        f"; the script at offset {first} was not scanned: a string literal never ends"
        f"; the script at offset {second} was not scanned: a template literal never ends"
    )


@pytest.mark.parametrize("tag", ["svg", "math", "select"])
def test_no_script_after_an_untracked_element_is_scanned(tag: str) -> None:
    with pytest.raises(UpstreamBadResponse) as refused:
        split_page(f"<{tag}></{tag}>{SCRIPT}")

    assert str(refused.value).endswith(f"was not scanned: it comes after a <{tag}>")


def test_base_href_is_escaped_as_an_attribute() -> None:
    head = split_page(SCRIPT, base_href='https://w/?q="x"&a=<b>').head.decode()

    assert head.startswith('<base href="https://w/?q=&quot;x&quot;&amp;a=&lt;b&gt;">')


@given(token=st.text())
def test_any_token_is_an_exact_inert_literal(token: str) -> None:
    literal = js_string(token)

    assert json.loads(literal) == token
    assert literal.isascii()
    assert not set(literal) & set("<>&`$/'\u2028\u2029")
    assert literal[0] == literal[-1] == '"'
