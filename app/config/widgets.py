"""A config file's widgets, validated as a whole: every problem of every table at once.

Each widget's settings are the layers below, the later winning, then read by
`Settings.from_env` exactly as the environment is (the same parsers, `*_FILE` forms,
cross-checks and refusals; nothing validated twice or differently):

    the file's top-level keys  <  the environment (and .env)  <  the widget's table

The environment overrides the top level only for the variables that are settings
(the machine's other variables are none of the proxy's). A setting and its `_FILE`
form are one setting: a layer that gives either replaces both below it.

A problem is named by where it is: `widgets.support: HISSUNO_SECRET_KEY: …` for a
widget's own key; a key of the top level (or the environment) is named alone, once,
however many widgets it breaks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ..errors import SettingsError
from ..options import read_environ, strays
from ..settings import Option, Settings, all_options
from .mounts import mount_path, overlaps
from .tables import Tables, read_tables

# Settings of the process, not of one widget: its logs, its drain, its /metrics, the
# request heads its server reads.
PROCESS_WIDE: Final = (
    "MAX_HEADER_BYTES",
    "MAX_REQUEST_TARGET_BYTES",
    "LOG_FORMAT",
    "LOG_LEVEL",
    "LOG_EMAILS",
    "SHUTDOWN_TIMEOUT",
    "METRICS_ENABLED",
    "METRICS_ALLOW",
)


@dataclass(frozen=True, slots=True)
class Widget:
    """One `[widgets.NAME]` table: where it is mounted and its settings."""

    name: str
    mount: str
    settings: Settings


@dataclass(frozen=True, slots=True)
class WidgetsConfig:
    """Every widget of a config file, in the file's order, and where it was read."""

    widgets: tuple[Widget, ...]
    source: Path

    @property
    def process(self) -> Settings:
        """The process-wide settings (`PROCESS_WIDE`): every widget holds the same."""
        return self.widgets[0].settings

    @property
    def shutdown_timeout(self) -> int:
        return self.process.shutdown_timeout

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s for w in self.widgets for s in w.settings.secrets))

    @classmethod
    def mounted(cls, widgets: Mapping[str, Settings]) -> WidgetsConfig:
        """Widgets built in Python (`typed.widget_settings`), by mount path; each is named
        by its path (`/shop/chat`: shop-chat). The mounts are checked as a file's are."""
        problems = []
        found = []
        for path, settings in widgets.items():
            name = path.strip("/").replace("/", "-") or "root"
            try:
                found.append(Widget(name, mount_path(path), settings))
            except ValueError as exc:
                problems.append(f"widgets.{name}: mount: {exc}")
        problems += overlaps({w.name: w.mount for w in found})
        if problems or not found:
            raise SettingsError(problems or ["no widget to mount"])
        return cls(tuple(found), Path("<python>"))

    @classmethod
    def load(cls, path: Path, env_file: Path | None = Path(".env")) -> WidgetsConfig:
        """The file at `path` under the environment over an optional `.env`."""
        return cls.from_tables(read_tables(path), read_environ(env_file), source=path)

    @classmethod
    def from_tables(
        cls, tables: Tables, environ: Mapping[str, str], *, source: Path
    ) -> WidgetsConfig:
        """Every widget's settings from `tables`, or SettingsError with every problem."""
        options = all_options()
        names = setting_names(options)
        problems = list(tables.problems)
        problems += _unknown(tables.shared, names, "")
        shared = layer(tables.shared, {k: v for k, v in environ.items() if k in names})
        mounts: dict[str, str] = {}
        widgets = []
        for name, table in tables.widgets.items():
            where = f"widgets.{name}: "
            own = dict(table)
            try:
                mounts[name] = mount_path(own.pop("mount", None))
            except ValueError as exc:
                problems.append(f"{where}mount: {exc}")
            problems += _unknown(own, names, where)
            problems += [
                f"{where}{key}: is the process's, not one widget's: set it at the top level"
                for key in own
                if key in PROCESS_WIDE
            ]
            env = layer(shared, own)
            problems += _foreign(own, env.get("TOKEN_PROVIDER", ""), options, where)
            try:
                settings = Settings.from_env(env)
            except SettingsError as exc:
                problems += [_named(p, shared, own, where) for p in exc.problems]
                continue
            if name in mounts:
                widgets.append(Widget(name, mounts[name], settings))
        problems += overlaps(mounts)
        if problems:
            raise SettingsError(list(dict.fromkeys(problems)))  # a shared key's, once
        return cls(tuple(widgets), source)


def setting_names(options: tuple[Option, ...]) -> frozenset[str]:
    return frozenset(n for o in options for n in (o.name, o.file_name)[: 1 + o.secret])


def layer(below: Mapping[str, str], over: Mapping[str, str]) -> dict[str, str]:
    """`over` on `below`: a setting given either way in `over` replaces both forms."""
    merged = dict(below)
    for key, value in over.items():
        merged.pop(key.removesuffix("_FILE") if key.endswith("_FILE") else f"{key}_FILE", None)
        merged[key] = value
    return merged


def _unknown(table: Mapping[str, str], names: frozenset[str], where: str) -> list[str]:
    extra = {"mount"} if where else set()  # a widget's table has its mount besides
    return [
        f"{where}{key}: is not a setting; did you mean {strays.closest(key, names | extra)}?"
        for key in table
        if key not in names
    ]


def _foreign(
    table: Mapping[str, str], provider: str, options: tuple[Option, ...], where: str
) -> list[str]:
    """A vendor's setting in the table of a widget of another vendor: a mix-up."""
    vendors = {n: o.vendor for o in options if o.vendor for n in (o.name, o.file_name)}
    return [
        f"{where}{key}: is a setting of TOKEN_PROVIDER={vendors[key]}; this widget's is"
        f" {provider or 'the default'}"
        for key in table
        if key in vendors and vendors[key] != provider and provider
    ]


def _named(problem: str, shared: Mapping[str, str], own: Mapping[str, str], where: str) -> str:
    """A problem of `Settings.from_env` named by where its key was set: the top level
    (named alone, so that it is reported once) or else the widget's table (a key it
    lacks is the widget's too)."""
    key = problem.partition(":")[0].removesuffix("_FILE")
    if key in own or f"{key}_FILE" in own:
        return f"{where}{problem}"
    return problem if key in shared or f"{key}_FILE" in shared else f"{where}{problem}"
