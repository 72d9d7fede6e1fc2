"""Widgets' settings from Python, for a merchant who mounts several in their app:
typed values by keyword (or a mapping), validated exactly as the environment is.

    rewards = widget_settings(token_provider="returningai", widget_id="store-1")
    support = widget_settings(token_provider="hissuno", widget_color="dark")

A keyword is a setting's variable in lower case (`hissuno_secret_key` for
HISSUNO_SECRET_KEY, `session_secret_file` for its file form); a value is what the
setting holds: a string, a number, a boolean, a `Secret`, a `Path`, or a list of
strings (`allowed_origins=["https://shop.example.com"]`). They are written as the
environment holds them (`config.tables`) over `env` (the environment over `.env`
unless given) and read by `Settings.from_env`: the same parsers, checks and refusals,
every problem at once in one `SettingsError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..errors import SettingsError
from ..options import read_environ, strays
from ..secret import Secret
from ..settings import Settings, all_options
from .tables import as_text
from .widgets import layer, setting_names


def widget_settings(
    values: Mapping[str, object] | None = None,
    /,
    *,
    env: Mapping[str, str] | None = None,
    **keywords: object,
) -> Settings:
    """One widget's settings: `values` and `keywords` (the later winning) over `env`."""
    names = setting_names(all_options())
    given = {**(values or {}), **keywords}
    problems = []
    written: dict[str, str] = {}
    for key, value in given.items():
        name = key.upper()
        if name not in names:
            problems.append(
                f"{key}: is not a setting; did you mean {strays.closest(name, names).lower()}?"
            )
            continue
        try:
            written[name] = as_text(name, _plain(value))
        except ValueError as exc:
            problems.append(f"{key}: {exc}")
    if problems:
        raise SettingsError(problems)
    return Settings.from_env(layer(read_environ() if env is None else env, written))


def _plain(value: object) -> object:
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value
