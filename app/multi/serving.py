"""What `widget-proxy serve --config FILE` runs in each process: the widgets of the
file, reloaded from it on SIGHUP all or nothing (`reload.Reloading`: a file with any
problem keeps the running widgets, and every problem is logged).

`CONFIG_VARIABLE` names the file when `--config` is not given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from starlette.applications import Starlette

from ..config import WidgetsConfig
from ..ops.metrics import Metrics
from ..options.strays import COMMAND_LINE
from ..reload import Reloading, changed_options
from ..serve import ProcessOutput, ignore_sighup_until_serving, serve_problems
from .app import create_widgets_app

CONFIG_VARIABLE: Final = "WIDGET_PROXY_CONFIG"
assert CONFIG_VARIABLE in COMMAND_LINE  # never warned of as a stray setting


def config_problems(config: WidgetsConfig, *, proxy_headers: bool) -> list[str]:
    """What `serve`'s flags rule out in each widget's settings, named by widget."""
    return [
        f"widgets.{widget.name}: {problem}"
        for widget in config.widgets
        for problem in serve_problems(widget.settings, proxy_headers=proxy_headers)
    ]


def changed_widgets(old: WidgetsConfig, new: WidgetsConfig) -> list[str]:
    """What a reload changed: widgets added or removed, and each widget's settings and
    mount (names only, never values)."""
    before = {w.name: w for w in old.widgets}
    after = {w.name: w for w in new.widgets}
    changed = [f"widgets.{name} (removed)" for name in before if name not in after]
    for name, widget in after.items():
        if name not in before:
            changed.append(f"widgets.{name} (added)")
            continue
        was = before[name]
        keys = (["mount"] if was.mount != widget.mount else []) + changed_options(
            was.settings, widget.settings
        )
        changed += [f"widgets.{name}: {key}" for key in keys]
    return changed


def serve_widgets(
    *, config: str, proxy_headers: bool, metrics_dir: str | None = None
) -> Reloading[WidgetsConfig]:
    """The app of `widget-proxy serve --config` (a uvicorn factory, run in each worker)."""
    ignore_sighup_until_serving()
    metrics = Metrics(multiprocess_dir=metrics_dir, widgets=True)  # for every generation
    output = ProcessOutput.start(metrics)

    def build(loaded: WidgetsConfig) -> Starlette:
        return create_widgets_app(
            loaded,
            metrics=metrics,
            request_log=output.lines,
            tracer=output.tracer,
            shared_dir=metrics_dir,  # with memory://, a forget reaches every worker
        )

    return Reloading(
        lambda: WidgetsConfig.load(Path(config)),
        build,
        check=lambda loaded: config_problems(loaded, proxy_headers=proxy_headers),
        handle_sighup=True,
        flush=output.flush,
        changes=changed_widgets,
    )
