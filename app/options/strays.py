"""Variables that look like settings but are none: a typo (`TOKEN_REFRESH_MARGN`), a
name from another version, or a setting the proxy no longer reads. Each gets one
warning line with a did-you-mean; none is an error (the environment is shared with
everything else on the machine, and a stray variable changes nothing).

A variable looks like a setting when its name is close to one, or starts with the
first word of one (`TOKEN_`, `SESSION_`, `CACHE_`, each vendor's own). What the
platform sets beside it is left alone: Kubernetes' service variables (a Service called
widget-proxy gives `WIDGET_PROXY_SERVICE_HOST`), and the desktop's `SESSION_MANAGER`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from difflib import SequenceMatcher, get_close_matches
from typing import Final

from . import Option

# Settings that were the proxy's once, and why they are not read now.
RETIRED: Final = {
    name: "is not read by the proxy: set https_only/same_site on your app's SessionMiddleware"
    " (the session cookie is your app's; the proxy only reads it)"
    for name in ("SESSION_HTTPS_ONLY", "SESSION_SAME_SITE")
}
# Read by the command line, not a setting: the config file `serve --config` defaults to.
COMMAND_LINE: Final = frozenset({"WIDGET_PROXY_CONFIG"})
# Set by the platform, never by a merchant for the proxy: Kubernetes' service variables
# (`X_SERVICE_HOST`, `X_PORT_8000_TCP_ADDR`, … and `X_PORT=tcp://…`), the desktop's one.
PLATFORM: Final = re.compile(
    r"SESSION_MANAGER|.+_SERVICE_(HOST|PORT)(_.+)?|.+_PORT_\d+_(TCP|UDP|SCTP)(_(ADDR|PORT|PROTO))?"
)
SERVICE_ADDRESS: Final = re.compile(r"(tcp|udp|sctp)://\S+")
# Closer than this to a setting's name is taken for a misspelling of it.
CLOSE: Final = 0.8
# A first word this long and this close to a setting's is a misspelt prefix (NEURON_
# for NEUROON_); shorter words are too often another program's (PAGER, PAGE_).
LONG_WORD: Final = 6


def warnings(env: Mapping[str, str], options: Iterable[Option]) -> list[str]:
    """One line for each variable of `env` that looks like a setting but is none of
    `options` (nor a secret's `_FILE` form), in name order."""
    names = sorted({n for o in options for n in (o.name, o.file_name)[: 1 + o.secret]})
    words = {_first_word(name) for name in names}
    found = []
    for name, value in sorted(env.items()):
        if name in names or name in COMMAND_LINE or _platform(name, value):
            continue
        if name in RETIRED:
            found.append(f"{name} {RETIRED[name]}")
        elif name.endswith("_FILE") and name.removesuffix("_FILE") in names:
            found.append(
                f"{name} is not read: only a secret setting has a _FILE form;"
                f" did you mean {name.removesuffix('_FILE')}?"
            )
        elif _looks_like_ours(name, names, words):
            guess = closest(name, names)
            found.append(f"{name} is not a setting (ignored); did you mean {guess}?")
    return found


def closest(name: str, names: Iterable[str]) -> str:
    """The setting `name` most likely misspells: the closest of its own group (the same
    first word), else of all (a config file's unknown keys are told it too)."""
    ordered = sorted(names)
    if name.upper() in ordered:  # a config file's key in lower case
        return name.upper()
    group = [n for n in ordered if _first_word(n) == _first_word(name)] or ordered
    return (get_close_matches(name, group, 1, 0) or group)[0]


def _platform(name: str, value: str) -> bool:
    if PLATFORM.fullmatch(name):
        return True
    return name.endswith("_PORT") and SERVICE_ADDRESS.fullmatch(value) is not None


def _looks_like_ours(name: str, names: list[str], words: set[str]) -> bool:
    if get_close_matches(name, names, 1, CLOSE):
        return True
    word = _first_word(name)
    if word in words:
        return True
    return len(word) >= LONG_WORD and any(
        len(w) >= LONG_WORD and SequenceMatcher(None, word, w).ratio() >= CLOSE for w in words
    )


def _first_word(name: str) -> str:
    return name.split("_", 1)[0]
