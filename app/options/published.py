"""Secrets anyone may know: the values this project published, and placeholders.

A secret setting equal to one of them is refused (`options.parse_options`): a session
cookie signed with the `.env.example`'s secret can be forged by anyone who read it.

`PUBLISHED` holds, as written, every secret value this repository ever showed: the
`.env.example`, the README and the docs, the demo, and the test suite's fixed values
(a value anyone can read in the repository is known). They are kept in plain text, not
as digests: each is public already (the git history has them), and a reader sees at
once what is refused; a digest would hide nothing and make the list unreadable.
`tests/options/test_published.py` checks that every secret value in the docs and the
`.env.example` is refused, so a new example can't slip through.

`PLACEHOLDERS` and `too_regular` catch what was never published but is no secret
either: the words people leave in a template, and a key too regular to be random.
Each rule is narrow enough that a random key (`secrets.token_urlsafe`, hex) trips it
less often than once in ten million.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Final

# How a merchant makes a secret of their own (the `.env.example` says it too).
MAKE_ONE: Final = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"

PUBLISHED: Final = frozenset(
    {
        # .env.example, README (before secrets shipped empty)
        "replace-with-at-least-32-random-characters-0123456789",
        "replace-with-the-vendor-api-key",
        # the test suite's fixed keys and passwords (before they were made per run)
        "key-that-must-stay-hidden",
        "a-shared-secret-of-more-than-32-characters",
        "live-api-key-0123456789",
        "stray-returningai-key",
        "sk_0123456789abcdef0123456789abcdef",
        "sk_live_Ab3_-Ab3_-Ab3_-Ab3_-Ab3_-Ab3_-xy",
        "hunter2",
        "hunter2-pw",
        "hunter2%2Dpw",
        "pw",
        "p@ss",
        "p%40ss",
        "p?w",
        "p%3Fw",
        "Zq7LeftZq7Right",
        "Zq7Left?Zq7Right",
        "Zq7Left%3FZq7Right",
        "Zq7Right-2",
    }
)

# (what is shown, the pattern): words left in a template. The short ones count only as
# words of their own, so that a random key holding the letters is not taken for one.
_WORD = r"(?<![a-z0-9]){}(?![a-z0-9])"
PLACEHOLDERS: Final = tuple(
    (shown, re.compile(pattern, re.IGNORECASE))
    for shown, pattern in (
        ("replace-with", r"replace[-_ ]?(with|me)"),
        ("change-me", r"change[-_ ]?(me|it|this)"),
        ("example", r"example"),
        ("placeholder", r"placeholder"),
        ("your-…-here", r"^your[-_ ]|your.{0,40}here"),
        ("xxxx", _WORD.format("x{4,}")),
        ("todo", _WORD.format("(todo|fixme)")),
        ("…", r"…|\.\.\."),
        ("a template's variable", r"^(<.*>|\$\{.*\}|\{\{.*\}\}|%[a-z_]+%)$"),
        (
            "a word that is no secret",
            r"^(secret|password|passw0rd|changeit|test|testing|demo|dev|dummy|fake|none"
            r"|null|default|key|api[-_]?key|token|admin|root)$",
        ),
    )
)


def refusal(value: str) -> str | None:
    """Why `value` can't be a secret (it is published, or a placeholder), or None.
    The reason never quotes the value."""
    value = value.strip()
    if value in PUBLISHED:
        return "is a value this project published (its examples, docs or tests): anyone may know it"
    for shown, pattern in PLACEHOLDERS:
        if pattern.search(value):
            return f"looks like a placeholder ({shown}), not a secret"
    if regular := too_regular(value):
        return f"is too regular to be a secret ({regular})"
    return None


def too_regular(value: str) -> str | None:
    """What makes `value` a pattern rather than a random key, or None: one character
    over and over, a short run repeated, or a long stretch of consecutive characters."""
    if len(set(value)) == 1:
        return "one character repeated"
    for period in range(1, 9):
        # At least 3 copies, 12 characters in all: in random hex, 1 in 10^8 or rarer.
        copies = max(3, -(-12 // period))
        if re.search(rf"(.{{{period}}})\1{{{copies - 1},}}", value, re.DOTALL):
            return "one character repeated" if period == 1 else "a short run repeated"
    if _longest_step_run(value.lower()) >= 10:
        return "a run of consecutive characters, such as 0123456789"
    return None


def _longest_step_run(value: str) -> int:
    """The longest stretch of characters each one above (or each one below) the last."""
    best = run_up = run_down = 1 if value else 0
    for before, after in pairwise(value):
        step = ord(after) - ord(before)
        run_up = run_up + 1 if step == 1 else 1
        run_down = run_down + 1 if step == -1 else 1
        best = max(best, run_up, run_down)
    return best
