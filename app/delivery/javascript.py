"""JavaScript, tokenized as far as finding a placeholder in code needs: strings,
template literals, regular expression literals, comments (HTML-like ones too, outside
modules) and brackets. Code inside a template literal's `${...}` is code. A script it
can't read for certain (an unterminated literal, unbalanced brackets, a `/` whose
meaning depends on more than its tokens) raises `Unread`: it has no placeholder.
"""

from __future__ import annotations

import re
from typing import NamedTuple


class Unread(Exception):
    """Why a script can't be read for certain; none of it is then a placeholder."""


# --- JavaScript: tokens, so that strings, comments and literals are never code --------

_NEWLINES = "\n\r\u2028\u2029"
_LINE_END = re.compile(r"[\n\r\u2028\u2029]")
_SPACE = re.compile(r"[\t\v\f \xa0\ufeff\u1680\u2000-\u200a\u202f\u205f\u3000]+")
# Any non-ASCII character but a space may be part of a name: one that may not makes
# the script a syntax error, and a script that doesn't parse never runs.
_NAME = re.compile(r"(?:[\w$#\\]|[^\x00-\x7f\s\ufeff])+")
_NUMBER = re.compile(r"\.?[0-9](?:[eE][+-]|[\w.])*")
_STRING = {q: re.compile(rf"{q}(?:[^{q}\\\n\r]++|\\(?:\r\n|[\s\S]))*+{q}") for q in "'\""}
_TEMPLATE = re.compile(r"(?:[^`\\$]++|\\[\s\S]|\$(?!\{))*+(?:`|\$\{)")  # after ` or }
_REGEX = re.compile(
    r"/(?:[^/\\\[\n\r\u2028\u2029]++|\\[^\n\r\u2028\u2029]"
    r"|\[(?:[^\]\\\n\r\u2028\u2029]++|\\[^\n\r\u2028\u2029])*+\])++/[\w$]*"
)
_PUNCTUATOR = re.compile(
    r">>>=?|\.\.\.|[=!]==|\*\*=?|<<=?|>>=?|&&=?|\|\|=?|\?\?=?|\?\.(?![0-9])|=>|\+\+|--"
    r"|[-+*/%&|^<>!=]=|[\s\S]"
)
# After these words an expression starts, so a `/` starts a regular expression.
_BEFORE_EXPRESSION = frozenset(
    {"return", "typeof", "instanceof", "in", "new", "delete", "void", "throw", "case", "do"}
    | {"else", "extends", "default", "break", "continue", "debugger"}
)
_KEYWORD_OR_NAME = frozenset({"yield", "await", "of"})  # which one depends on context
_STATEMENT_HEADS = frozenset({"if", "while", "for", "with"})  # `if (a) /re/.test(b)`
_CLOSERS = {")": "(", "]": "[", "}": "{"}


class Token(NamedTuple):
    kind: str  # "name", "punct", "string", "template", "number" or "regex"
    text: str
    start: int


def js_tokens(src: str, *, module: bool) -> list[Token]:
    """The tokens of a script, comments left out; Unread where it can't be sure.

    A template literal is one token up to its end or its first `${`, and again from the
    `}` that closes each `${`: what is in between is code. Whether a `/` starts a
    regular expression or divides is decided by the token before it, as JavaScript
    does; where that is not enough (after `}`, or after a word like `await` that may
    be a keyword or a name) the script is unread.
    """
    tokens: list[Token] = []
    # Open brackets, innermost last, each with what a `/` right after its closing
    # bracket would be: True a regular expression, False a division, None can't tell.
    brackets: list[tuple[str, bool | None]] = []
    regex_ok: bool | None = True  # would a `/` here start a regular expression?
    line_start = True  # nothing but spaces and comments since a line break (or the start)
    pos = _line_end(src, 0) if src.startswith("#!") else 0  # a hashbang is a comment
    while pos < len(src):
        ch = src[pos]
        if ch in _NEWLINES:
            pos, line_start = pos + 1, True
            continue
        if space := _SPACE.match(src, pos):
            pos = space.end()
            continue
        html_comment = src.startswith("<!--", pos) or (line_start and src.startswith("-->", pos))
        if src.startswith("//", pos) or (html_comment and not module):
            pos = _line_end(src, pos)
            continue
        if src.startswith("/*", pos):
            close = src.find("*/", pos + 2)
            if close < 0:
                raise Unread("a comment never ends")
            line_start = line_start or any(c in _NEWLINES for c in src[pos:close])
            pos = close + 2
            continue
        after_line_break, line_start = line_start, False
        kind: str = "punct"
        next_regex_ok: bool | None = True
        if ch in "'\"":
            kind, next_regex_ok, match = "string", False, _STRING[ch].match(src, pos)
        elif ch == "`" or (ch == "}" and brackets and brackets[-1][0] == "${"):
            if ch == "}":
                brackets.pop()
            kind, next_regex_ok, match = "template", False, _TEMPLATE.match(src, pos + 1)
            if match is not None and match.group().endswith("${"):
                brackets.append(("${", None))
                next_regex_ok = True
        elif "0" <= ch <= "9" or (ch == "." and "0" <= src[pos + 1 : pos + 2] <= "9"):
            kind, next_regex_ok, match = "number", False, _NUMBER.match(src, pos)
        elif ch == "/" and regex_ok:
            kind, next_regex_ok, match = "regex", False, _REGEX.match(src, pos)
        elif ch == "/" and regex_ok is None:
            raise Unread(f"a `/` after `{tokens[-1].text}` may divide or start a regex")
        elif match := _NAME.match(src, pos):
            kind, next_regex_ok = "name", _regex_after_word(match.group(), tokens, module)
        else:
            match = _PUNCTUATOR.match(src, pos)
            assert match is not None  # it matches any one character
            next_regex_ok = _regex_after_punctuator(match.group(), tokens, brackets)
            if match.group() in ("++", "--") and not after_line_break:
                next_regex_ok = regex_ok  # postfix in `a++ / 2`, prefix in `x = ++/a/.b`
        if match is None:
            raise Unread(f"a {kind} literal never ends")
        tokens.append(Token(kind, src[pos : match.end()], pos))
        pos, regex_ok = match.end(), next_regex_ok
    if brackets:
        raise Unread(f"a `{brackets[-1][0]}` is never closed")
    return tokens


def _line_end(src: str, pos: int) -> int:
    line_end = _LINE_END.search(src, pos)
    return line_end.start() if line_end else len(src)


def _regex_after_word(word: str, tokens: list[Token], module: bool) -> bool | None:
    if tokens and tokens[-1].text in (".", "?."):
        return False  # a property name, whatever the word: `a.return / 2`
    if word in _BEFORE_EXPRESSION:
        return True
    if word in _KEYWORD_OR_NAME:
        return True if module and word != "of" else None
    return False


def _regex_after_punctuator(
    text: str, tokens: list[Token], brackets: list[tuple[str, bool | None]]
) -> bool | None:
    """Keep track of brackets; would a `/` right after `text` start a regular expression?

    After a closing bracket it depends on the bracket; after any other punctuator, yes.
    """
    if text == "(":
        brackets.append(("(", _is_statement_head(tokens)))
    elif text in ("[", "{"):
        brackets.append((text, False if text == "[" else None))
    elif text in _CLOSERS:
        if not brackets or brackets[-1][0] != _CLOSERS[text]:
            raise Unread(f"a `{text}` closes nothing it opened")
        return brackets.pop()[1]
    return True


def _is_statement_head(tokens: list[Token]) -> bool:
    """Is a `(` after `tokens` the head of `if`, `while`, `for` (`for await`) or `with`?"""
    i = len(tokens) - 1
    if [token.text for token in tokens[-2:] if token.kind == "name"] == ["for", "await"]:
        i -= 1
    if i < 0 or tokens[i].kind != "name" or tokens[i].text not in _STATEMENT_HEADS:
        return False
    return i == 0 or tokens[i - 1].text not in (".", "?.")  # not a property: `a.if(b)`
