"""`widget-proxy check --config FILE`: every widget's steps, one widget after another,
each group headed by its table; the first failure stops the check (as alone)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..config import WidgetsConfig
from ..errors import SettingsError
from . import check_widget, verdict
from .checklist import Checklist


def run_check_config(path: str, email: str | None, *, strict: bool = False) -> int:
    out = Checklist(sys.stdout)
    try:
        config = WidgetsConfig.load(Path(path))
    except SettingsError as exc:
        out.failed("settings", str(exc))
        out.say(f"Check failed: {len(exc.problems)} problem(s) in {path}; nothing was tried")
        return 2
    for widget in config.widgets:
        out.say(f"widgets.{widget.name} (mounted at {widget.mount}):")
        source = f"{path} [widgets.{widget.name}]"
        code = check_widget(widget.settings, out, email, origin=None, source=source)
        if code:
            return code
    return verdict(out, strict=strict)
