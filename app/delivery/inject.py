"""Find the empty token in the widget page once, so serving it is a concatenation.

A page is split when it is fetched, not when it is served: `SplitPage.render` only
joins three byte strings. Only the `token` member of the object literal assigned to
`window.__WIDGET_INIT__` inside an inline `<script>` is a placeholder, and only
while it is an empty string literal.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from html import escape

from ..errors import UpstreamBadResponse

_INLINE_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL)
_HAS_SRC = re.compile(r"\bsrc\s*=", re.IGNORECASE)
_ASSIGNMENT = re.compile(r"\bwindow\s*\.\s*__WIDGET_INIT__\s*=\s*\{")
_HEAD = re.compile(r"<head\b[^>]*>", re.IGNORECASE)
_HTML = re.compile(r"<html\b[^>]*>", re.IGNORECASE)
_BASE = re.compile(r"<base\b", re.IGNORECASE)
_IDENT = re.compile(r"[A-Za-z_$][\w$]*")
_SPACE = re.compile(r"(?:\s+|//[^\n]*|/\*.*?\*/)*", re.DOTALL)
_JS_UNSAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


@lru_cache(maxsize=4096)  # a user's token is served many times while it lives
def js_string(value: str) -> str:
    """A JavaScript string literal for `value` that is inert inside an inline <script>.

    JSON escapes quotes, backslashes, control characters and (with ensure_ascii)
    everything beyond ASCII, U+2028/U+2029 included; `<`, `>` and `&` are escaped
    too so that no `</script>` or `<!--` can appear in the literal.
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
    if base_href is not None and not _BASE.search(html):
        html = _insert_base(html, base_href)
    found = [
        (body_start + start, body_start + end)
        for match in _INLINE_SCRIPT.finditer(html)
        if not _HAS_SRC.search(match.group(1))
        for body_start in (match.start(2),)
        for start, end in _placeholders(match.group(2))
    ]
    if not found:
        raise UpstreamBadResponse(
            "the widget page has no empty token in window.__WIDGET_INIT__ (placeholder missing)"
        )
    if len(found) > 1:
        raise UpstreamBadResponse(
            f"the widget page has {len(found)} token placeholders; refusing to guess"
        )
    start, end = found[0]
    return SplitPage(html[:start].encode("utf-8"), html[end:].encode("utf-8"))


def _insert_base(html: str, href: str) -> str:
    tag = f'<base href="{escape(href, quote=True)}">'
    anchor = _HEAD.search(html) or _HTML.search(html)
    at = anchor.end() if anchor else 0
    return html[:at] + tag + html[at:]


def _placeholders(script: str) -> list[tuple[int, int]]:
    """Spans of empty `token` values in each `window.__WIDGET_INIT__ = {...}` of a script."""
    spans = []
    for match in _ASSIGNMENT.finditer(script):
        span = _empty_token_in_object(script, match.end())
        if span is not None:
            spans.append(span)
    return spans


def _empty_token_in_object(src: str, pos: int) -> tuple[int, int] | None:
    """Scan the object literal whose `{` ends just before `pos`, at depth one only.

    A tiny tokenizer, not a JavaScript parser: it skips strings, comments and nested
    brackets so that a `token` inside a nested object or a string is never taken.
    As in JavaScript, the last `token` key wins, and an object that never closes
    has no placeholder.
    """
    depth = 1
    expect_key = True
    found: tuple[int, int] | None = None
    while pos < len(src):
        pos = _skip(src, pos)
        if pos >= len(src):
            break
        ch = src[pos]
        key_end = None
        if ch in "\"'`":
            end = _string_end(src, pos)
            if end is None:
                return None
            if depth == 1 and expect_key and src[pos + 1 : end - 1] == "token":
                key_end = end
            pos, expect_key = end, False
        elif ch in "{[(":
            depth, pos, expect_key = depth + 1, pos + 1, False
        elif ch in "}])":
            depth -= 1
            if depth == 0:
                return found
            pos += 1
        elif ch == ",":
            expect_key = depth == 1
            pos += 1
        elif (ident := _IDENT.match(src, pos)) is not None:
            if depth == 1 and expect_key and ident.group() == "token":
                key_end = ident.end()
            pos, expect_key = ident.end(), False
        else:
            pos += 1
        if key_end is not None:
            found = _empty_value_after_key(src, key_end)
    return None


def _empty_value_after_key(src: str, pos: int) -> tuple[int, int] | None:
    pos = _skip(src, pos)
    if not src.startswith(":", pos):
        return None
    pos = _skip(src, pos + 1)
    if src[pos : pos + 2] in ('""', "''"):
        return pos, pos + 2
    return None


def _skip(src: str, pos: int) -> int:
    """Past any whitespace and comments."""
    match = _SPACE.match(src, pos)
    return match.end() if match else pos


def _string_end(src: str, pos: int) -> int | None:
    """Index just past the string literal starting at `pos`, or None if unterminated."""
    quote = src[pos]
    i = pos + 1
    while i < len(src):
        ch = src[i]
        if ch == "\\":
            i += 2
            continue
        if ch == quote:
            return i + 1
        if ch == "\n" and quote != "`":
            return None
        i += 1
    return None
