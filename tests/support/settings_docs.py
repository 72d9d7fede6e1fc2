"""The settings tables of `docs/settings.md` and `.env.example`, written from the code.

    python -m tests.support.settings_docs     # rewrite both in place

`tests/test_settings.py` checks both files against the code, so the code stays the
one source of truth; this writes what that check expects. In `docs/settings.md` only
what lies between the two marker comments is written: one table for the core
settings, then one for each vendor's group, under a heading whose anchor is the
vendor's name (`settings.md#hissuno`).
"""

from __future__ import annotations

import sys
from itertools import groupby
from pathlib import Path

from widget_proxy.options import Option
from widget_proxy.options.published import MAKE_ONE
from widget_proxy.providers import DEFAULT_PROVIDER
from widget_proxy.settings import all_options

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "settings.md"
BEGIN = "<!-- settings: written by `python -m tests.support.settings_docs` from the code -->\n"
END = "<!-- end of the settings -->\n"
# What a merchant must replace in `.env.example` (the default vendor's required settings
# that are not secrets). Secrets ship empty: a value written here would be published,
# and the proxy refuses published secrets (`options.published`).
PLACEHOLDERS = {
    "WIDGET_BASE_URL": "https://prod-widgets.returning.ai",
    "WIDGET_COMMUNITY_ID": "your-community-id",
    "WIDGET_ID": "your-widget-id",
}
HEADER = """\
# widget-proxy settings. Copy to .env (or set them in the environment; the environment wins).
# Required settings are uncommented (for the default TOKEN_PROVIDER=returningai);
# every other line shows its default. A secret may instead be read from a file,
# e.g. WIDGET_API_KEY_FILE set to /run/secrets/widget_api_key (the lines marked "secret").
# Secrets ship empty: the vendor's key is the one it issued you; SESSION_SECRET, your own.
"""


def default_cell(option: Option) -> str:
    if option.default is None:
        return f"required for `{option.vendor}`" if option.vendor else "required"
    return option.shown or (f"`{option.default}`" if option.default else "empty")


def tables() -> str:
    """The core settings' table, then each vendor's, each under its heading."""
    parts = []
    for vendor, options in groupby(all_options(), key=lambda option: option.vendor):
        if vendor:
            heading = f"## `{vendor}`\n\nRead only when `TOKEN_PROVIDER={vendor}`.\n"
        else:
            heading = "## Core\n\nRead whatever the vendor.\n"
        rows = ["| name | meaning | default |", "|---|---|---|"]
        rows += [f"| `{o.name}` | {o.help} | {default_cell(o)} |" for o in options]
        parts.append(f"{heading}\n" + "\n".join(rows) + "\n")
    return "\n".join(parts)


def page(text: str) -> str:
    """`text` (the settings page) with its generated part written anew."""
    before, begin, rest = text.partition(BEGIN)
    _, end, after = rest.partition(END)
    assert begin, f"{PAGE.name} lacks the marker comment before its tables"
    assert end, f"{PAGE.name} lacks the marker comment after its tables"
    return f"{before}{BEGIN}\n{tables()}\n{END}{after}"


def env_example() -> str:
    lines = [HEADER]
    vendor = ""
    for option in all_options():
        if option.vendor != vendor:
            vendor = option.vendor
            lines.append(f"# --- {vendor}: only read with TOKEN_PROVIDER={vendor} ---\n")
        notes = []
        if option.default is None:
            notes.append(f"required with TOKEN_PROVIDER={vendor}" if vendor else "required")
        if option.secret:
            notes.append(f"secret: or {option.file_name}")
        comment = option.help + (f" ({'; '.join(notes)})" if notes else "")
        if option.default is None and vendor in ("", DEFAULT_PROVIDER):
            assignment = f"{option.name}={PLACEHOLDERS.get(option.name, '')}"
            if option.secret and not vendor:  # ours to make, not the vendor's to issue
                assignment = f"# make one: {MAKE_ONE}\n{assignment}"
        else:
            value = option.default or ""
            assignment = (
                f'# {option.name}="{value}"' if " " in value else f"# {option.name}={value}"
            )
        lines.append(f"# {comment}\n{assignment}\n")
    return "\n".join(lines)


def write() -> None:
    PAGE.write_text(page(PAGE.read_text()))
    (ROOT / ".env.example").write_text(env_example())


if __name__ == "__main__":
    write()
    sys.exit(0)
