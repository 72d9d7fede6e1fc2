"""Several widgets in one process (`serve --config`): each widget is the app
`create_app` builds, mounted at its path; the process shares what is right to share.

    app      `WidgetsApp` (the prefix dispatch) and `create_widgets_app`
    shared   one upstream client per vendor, one Redis pool per CACHE_URL
    root     `/healthz` and `/readyz` at the root, each widget named
"""

from __future__ import annotations

from .app import WidgetsApp, create_widgets_app

__all__ = ["WidgetsApp", "create_widgets_app"]
