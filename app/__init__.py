"""widget-proxy: serve third-party widgets to signed-in users; the API key stays here.

Installed and imported as `widget_proxy` (the source folder is `app/`):
`from widget_proxy import create_app`; `configure_logging()` for an app that mounts it;
`widget_settings(...)` and `mount_widgets(app, ...)` for an app that mounts several;
`await forget(app, email)` from its logout handler (docs/revocation.md).
"""

from __future__ import annotations

from .__version__ import __version__
from .application import create_app
from .config.typed import widget_settings
from .forgetting import forget
from .multi.mounting import mount_widgets
from .ops.logs import configure_logging
from .settings import Settings, SettingsError

__all__ = [
    "Settings",
    "SettingsError",
    "__version__",
    "configure_logging",
    "create_app",
    "forget",
    "mount_widgets",
    "widget_settings",
]
