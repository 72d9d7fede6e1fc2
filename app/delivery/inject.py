"""Find the empty token in the widget page once, so serving it is a concatenation.

A page is split when it is fetched, not when it is served: `SplitPage.render` only
joins three byte strings. Only the `token` member of the object literal assigned to
`window.__WIDGET_INIT__` inside an inline `<script>` is a placeholder, and only
while it is an empty string literal.

The vendor writes the page, so "inside a script" and "an empty string literal" must
mean what they mean to the browser. Two small left-to-right scanners decide:

* `_scan_html` walks the HTML as its tokenizer does: comments, `<!...>`/`<?...>`,
  raw text (`<script>` with its escape states, `<style>`, `<title>`, ...) and tags with
  their attributes, so `src` is exactly the attribute `src` and `<head>`, `<base>` and
  `<script>` are tags only where the browser sees tags. After a `<svg>`, `<math>` or
  `<select>`, where tree construction changes how the rest is tokenized, no script is
  scanned.
* `js_tokens` splits a script into JavaScript tokens: strings, template literals,
  regular expression literals, comments (HTML-like ones too, outside modules) and
  brackets, so the assignment and its object are found in code only. Code inside a
  template literal's `${...}` is code. A script it can't read for certain (an
  unterminated literal, unbalanced brackets, a `/` whose meaning depends on more than
  its tokens) has no placeholder at all.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from html import escape, unescape
from typing import NamedTuple

from ..errors import UpstreamBadResponse
from .javascript import Token, Unread, js_tokens

# JSON escapes quotes, backslashes, control characters and U+2028/U+2029; the rest can
# end a script (`</script>`, `<!--`) or, should the scanner ever be wrong, a template
# literal, a regular expression, a comment or a single-quoted string.
_JS_UNSAFE = str.maketrans({c: f"\\u{ord(c):04x}" for c in "<>&`$/'"})


def js_string(value: str) -> str:
    """A JavaScript string literal for `value` that is inert inside an inline <script>.

    JSON escapes quotes, backslashes, control characters and (with ensure_ascii)
    everything beyond ASCII, U+2028/U+2029 included; `<`, `>` and `&` are escaped
    too so that no `</script>` or `<!--` can appear in the literal, and `` ` ``, `$`,
    `/` and `'` so that it stays inert even where a template literal, regular
    expression, comment or single-quoted string would have surrounded it.
    (A user's token is escaped once per token and page: `cache/views` keeps the answer.)
    """
    return json.dumps(value).translate(_JS_UNSAFE)


@dataclass(frozen=True, slots=True)
class SplitPage:
    head: bytes
    tail: bytes

    def render(self, token: str) -> bytes:
        return self.head + js_string(token).encode("ascii") + self.tail


def split_page(html: str, base_href: str | None = None) -> SplitPage:
    """Split `html` around its one token placeholder; raise UpstreamBadResponse otherwise.

    With `base_href`, a `<base href>` is added (unless the page has one) so that the
    page's relative URLs still point at the upstream when it is served from here.
    """
    page = _scan_html(html)
    if base_href is not None and not page.has_base:
        tag = f'<base href="{escape(base_href, quote=True)}">'
        html = html[: page.base_at] + tag + html[page.base_at :]
        page = _scan_html(html)  # what is served is what is scanned
    found: list[tuple[int, int]] = []
    unread: list[str] = []
    for script in page.scripts:
        text = html[script.start : script.end]
        if "__WIDGET_INIT__" not in text:  # no placeholder there, however it tokenizes
            continue
        try:
            spans = _placeholders(text, script)
        except Unread as reason:
            unread.append(f"the script at offset {script.start} was not scanned: {reason}")
            continue
        found += [(script.start + start, script.start + end) for start, end in spans]
    if not found:
        raise UpstreamBadResponse(
            "the widget page has no empty token in window.__WIDGET_INIT__ (placeholder missing)"
            + "".join(f"; {note}" for note in unread)
        )
    if len(found) > 1:
        raise UpstreamBadResponse(
            f"the widget page has {len(found)} token placeholders; refusing to guess"
        )
    start, end = found[0]
    return SplitPage(html[:start].encode("utf-8"), html[end:].encode("utf-8"))


# --- HTML: comments, raw text and tags, as the browser's tokenizer reads them ----------

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_TAG = re.compile(r"</?([A-Za-z][^\t\n\f\r />]*)")
_ATTRIBUTE = re.compile(
    r"[\t\n\f\r /]*([^\t\n\f\r />][^\t\n\f\r /=>]*)"  # the name (it may start with "=")
    r"""(?:[\t\n\f\r ]*=[\t\n\f\r ]*("[^"]*"?|'[^']*'?|[^\t\n\f\r >]*))?"""  # the value
)
_TAG_END = re.compile(r"[\t\n\f\r /]*>")
# Elements whose text runs to their end tag (with scripting on, <noscript> too).
_RAW_TEXT = frozenset(
    {"style", "xmp", "iframe", "noembed", "noframes", "noscript", "textarea", "title"}
)
# Inside these the tree builder changes how what follows is tokenized: SVG and MathML
# scripts decode entities and CDATA, a classic <select> ignores most tags. A script
# after one is not scanned, rather than scanned the way the browser might not read it.
_UNTRACKED = frozenset({"svg", "math", "select"})
# What ends each of the script data states (HTML: script data, escaped, double escaped).
_SCRIPT_DATA = {
    "data": re.compile(r"<!--|</script[\t\n\f\r />]", re.I | re.A),
    "escaped": re.compile(r"-->|</script[\t\n\f\r />]|<script[\t\n\f\r />]", re.I | re.A),
    "double": re.compile(r"-->|</script[\t\n\f\r />]", re.I | re.A),
}
_JS_TYPES = frozenset(
    ["", "text/jscript", "text/livescript", *(f"text/javascript1.{n}" for n in range(6))]
    + [f"{top}/{sub}" for top in ("application", "text")
       for sub in ("ecmascript", "javascript", "x-ecmascript", "x-javascript")]
)  # fmt: skip


class _Script(NamedTuple):
    start: int  # the text of an inline script the browser runs: html[start:end]
    end: int
    module: bool
    unread: str  # why it must not be scanned, or ""


@dataclass
class _Page:
    scripts: list[_Script] = field(default_factory=list)
    base_at: int = 0  # just past the first <head> tag, else the first <html> tag, else 0
    has_base: bool = False


def _scan_html(html: str) -> _Page:
    """The page's inline scripts and the tags that place `<base>`, read left to right."""
    page = _Page()
    anchors: dict[str, int] = {}
    untracked = ""  # why no script from here on is scanned
    pos = 0
    while (lt := html.find("<", pos)) >= 0:
        if html.startswith("<!--", lt):
            pos = _comment_end(html, lt)
            continue
        tag = _TAG.match(html, lt)
        if tag is None:  # `<!…>`, `<?…>` and `</` + not a letter are bogus comments
            gt = html.find(">", lt) if html.startswith(("<!", "<?", "</"), lt) else lt
            pos = gt + 1 if gt >= 0 else len(html)
            continue
        attributes, pos = _attributes(html, tag.end())
        if pos < 0:
            break  # the file ends inside the tag
        name = tag.group(1).translate(_ASCII_LOWER)
        if tag.group().startswith("</"):
            continue
        if name in ("head", "html"):
            anchors.setdefault(name, pos)
        page.has_base |= name == "base"
        untracked = untracked or (f"it comes after a <{name}>" if name in _UNTRACKED else "")
        if name == "plaintext":
            break  # all the rest is text
        if name == "script":
            end = _script_end(html, pos)
        elif name in _RAW_TEXT:
            close = re.compile(f"</{name}[\t\n\f\r />]", re.I | re.A).search(html, pos)
            end = close.start() if close else None
        else:
            continue
        if end is None:
            break  # raw text to the end of the file: an unfinished script never counts
        kind = _script_kind(attributes) if name == "script" else None
        if kind is not None and "src" not in attributes:
            page.scripts.append(_Script(pos, end, kind == "module", untracked))
        pos = _attributes(html, end + len(f"</{name}"))[1]  # past the end tag
        if pos < 0:
            break
    page.base_at = anchors.get("head", anchors.get("html", 0))
    return page


def _comment_end(html: str, lt: int) -> int:
    """Just past the comment that `<!--` opens at `lt`; "<!-->" and "<!--->" are closed."""
    ends = [i + len(s) for s, n in (("-->", 2), ("--!>", 4)) if (i := html.find(s, lt + n)) >= 0]
    return min(ends, default=len(html))


def _attributes(html: str, pos: int) -> tuple[dict[str, str], int]:
    """The attributes of the tag whose name ends at `pos`, and the index past its `>`.

    The first of two attributes of the same name wins; the index is -1 when the file
    ends inside the tag.
    """
    attributes: dict[str, str] = {}
    while (match := _ATTRIBUTE.match(html, pos)) is not None:
        name, value = match.group(1).translate(_ASCII_LOWER), match.group(2) or ""
        if value[:1] in ("'", '"'):
            value = value[1:-1]
        attributes.setdefault(name, unescape(value))
        pos = match.end()
    end = _TAG_END.match(html, pos)
    return attributes, end.end() if end else -1


def _script_end(html: str, pos: int) -> int | None:
    """Where the text of the script starting at `pos` ends: the `<` of its `</script`."""
    state = "data"
    while (match := _SCRIPT_DATA[state].search(html, pos)) is not None:
        found = match.group().lower()
        if found == "<!--":  # its own "--" may close it again: "<!-->"
            state, pos = "escaped", match.start() + 2
        elif found == "-->":
            state, pos = "data", match.end()
        elif found.startswith("<script"):
            state, pos = "double", match.end()
        elif state == "double":
            state, pos = "escaped", match.end()
        else:
            return match.start()
    return None


def _script_kind(attributes: dict[str, str]) -> str | None:
    """How the browser runs a script: "classic", "module", or None (not JavaScript)."""
    kind = attributes.get("type")
    if kind is None and attributes.get("language"):
        kind = f"text/{attributes['language']}"
    kind = (kind or "").strip("\t\n\f\r ").translate(_ASCII_LOWER)
    if kind == "module":
        return kind
    return "classic" if kind in _JS_TYPES else None


def _placeholders(script: str, where: _Script) -> list[tuple[int, int]]:
    """Spans of empty `token` values in each `window.__WIDGET_INIT__ = {...}` of a script."""
    if where.unread:
        raise Unread(where.unread)
    tokens = js_tokens(script, module=where.module)
    texts = [token.text for token in tokens]  # a literal's text has its quotes or slashes
    return [
        span
        for i in range(len(tokens) - 4)
        if texts[i : i + 5] == ["window", ".", "__WIDGET_INIT__", "=", "{"]
        and (span := _empty_token_in_object(tokens, i + 5)) is not None
    ]


def _empty_token_in_object(tokens: list[Token], i: int) -> tuple[int, int] | None:
    """Scan the object literal whose `{` is just before `tokens[i]`, at depth one only.

    As in JavaScript, the last `token` key wins, and an object that never closes has no
    placeholder.
    """
    depth = 1
    expect_key = True
    found: tuple[int, int] | None = None
    for j in range(i, len(tokens)):
        kind, text, _ = tokens[j]
        if kind == "punct" and text in ("{", "[", "("):
            depth, expect_key = depth + 1, False
        elif kind == "punct" and text in ("}", "]", ")"):
            depth -= 1
            if depth == 0:
                return found
        elif kind == "punct" and text == ",":
            expect_key = depth == 1
        elif kind != "punct":
            key = text if kind == "name" else text[1:-1] if kind == "string" else None
            if depth == 1 and expect_key and key == "token":
                found = _empty_value(tokens, j + 1)
            expect_key = False
    return None


def _empty_value(tokens: list[Token], i: int) -> tuple[int, int] | None:
    """The span of the `""` or `''` in `: ""` at `tokens[i]`, else None."""
    if len(tokens) < i + 2 or tokens[i].text != ":":
        return None
    value = tokens[i + 1]
    if value.kind != "string" or value.text not in ('""', "''"):
        return None
    return value.start, value.start + 2
