"""Several widgets mounted in a merchant's own Starlette or FastAPI app, sharing what
`serve --config` shares (one upstream client per vendor, one Redis pool, one metrics
registry labelled by widget):

    rewards = widget_proxy.widget_settings(token_provider="returningai")
    support = widget_proxy.widget_settings(token_provider="hissuno")
    widgets = widget_proxy.mount_widgets(app, {"/rewards": rewards, "/support": support})
    # in the app's lifespan: async with widgets.router.lifespan_context(widgets): yield
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.applications import Starlette

from ..config import WidgetsConfig
from ..ops.requestlog import LineSink, through_logging
from ..settings import Settings
from .app import WidgetsApp, create_widgets_app


def mount_widgets(
    app: Starlette, widgets: Mapping[str, Settings], *, request_log: LineSink = through_logging
) -> WidgetsApp:
    """Mount each widget of `widgets` (mount path → settings) in `app`; the widgets'
    own app, whose lifespan the caller's runs (Starlette runs none of a mounted app's).
    Mounts that collide or nest raise `SettingsError`, every problem at once."""
    together = create_widgets_app(WidgetsConfig.mounted(widgets), request_log=request_log)
    for path, widget in together.mounts:
        app.mount(path, widget)
    return together
