"""Several widgets in one process, from one TOML config file (`serve --config FILE`).

    tables   the file read into setting values, as the environment holds them
    mounts   each widget's mount path, and that no two collide or nest
    widgets  every widget's `Settings`, validated as a whole (`WidgetsConfig`)

See docs/config-file.md.
"""

from __future__ import annotations

from .widgets import PROCESS_WIDE, Widget, WidgetsConfig

__all__ = ["PROCESS_WIDE", "Widget", "WidgetsConfig"]
