"""A config file's TOML read into tables of setting values, as the environment holds
them: strings under the variables' names.

    SESSION_SECRET_FILE = "/run/secrets/session"   # top level: every widget's
    CACHE_URL = "redis://127.0.0.1:6379/0"

    [widgets.rewards]
    mount = "/rewards"
    TOKEN_PROVIDER = "returningai"
    WIDGET_API_KEY_FILE = "/run/secrets/returningai"

A value is written as TOML types it: a string as it is, a boolean as `true`/`false`, a
number as its setting's default is written (`options.text`), a list of strings as
its comma-separated form (space-separated for FRAME_ANCESTORS, as its variable is).
Whatever else (a table where a value belongs, a date) is a problem naming the key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from ..options import read_bounded, text, within

# A config file names a handful of widgets; anything much larger is the wrong file.
MAX_CONFIG_FILE: Final = 256 * 1024
# The file is read on SIGHUP too, while the reload holds its lock (options.within).
READ_TIMEOUT: Final = 5.0
SEPARATORS: Final = {"FRAME_ANCESTORS": " "}  # a list's separator, where not a comma


@dataclass
class Tables:
    """The file's top-level settings and each widget's table (with its `mount`)."""

    shared: dict[str, str] = field(default_factory=dict)
    widgets: dict[str, dict[str, str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def read_tables(path: Path) -> Tables:
    """The file's tables; what can't be read is in `problems`, each naming its key."""
    found = Tables()
    try:
        text = within(
            READ_TIMEOUT, lambda: read_bounded(path, MAX_CONFIG_FILE), f"cannot read {path}"
        )
    except ValueError as exc:  # it names the file
        found.problems.append(str(exc))
        return found
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found.problems.append(f"{path}: {exc}")
        return found
    widgets = data.pop("widgets", {})
    found.shared = _values(data, "", found.problems)
    if not isinstance(widgets, dict) or not widgets:
        found.problems.append(f"{path}: no [widgets.NAME] table: name at least one widget")
        return found
    for name, table in widgets.items():
        if not isinstance(table, dict):
            found.problems.append(f"widgets.{name}: must be a table ([widgets.{name}])")
            continue
        found.widgets[name] = _values(table, f"widgets.{name}: ", found.problems)
    return found


def _values(table: dict[str, object], where: str, problems: list[str]) -> dict[str, str]:
    values = {}
    for key, value in table.items():
        try:
            values[key] = as_text(key, value)
        except ValueError as exc:
            problems.append(f"{where}{key}: {exc}")
    return values


def as_text(key: str, value: object) -> str:
    """`value` as the variable `key` holds it in the environment."""
    if isinstance(value, bool | int | float | str):
        return text(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return SEPARATORS.get(key, ",").join(value)
    if isinstance(value, dict):
        raise ValueError("is a table; a setting's value is a string, number, boolean or list")
    raise ValueError(f"a {type(value).__name__} is not a setting's value")
