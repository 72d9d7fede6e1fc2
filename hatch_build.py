"""Editable installs of the `app/` folder under its import name, `widget_proxy`.

Hatchling renames folders in a wheel (`sources`), but its editable installs can only
add folders to `sys.path`, which would make the source folder importable as `app`:
the very name of a merchant's own package. So an editable install gets a tiny import
finder instead, that maps `widget_proxy` (and so every submodule) to this checkout.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

FINDER = '''\
import importlib.util
import sys

class WidgetProxyFinder:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "widget_proxy":
            return None
        return importlib.util.spec_from_file_location(
            name, {init!r}, submodule_search_locations=[{folder!r}]
        )

sys.meta_path.insert(0, WidgetProxyFinder)
'''


class EditableImportName(BuildHookInterface):  # type: ignore[type-arg]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version != "editable":
            return
        folder = Path(self.root, "app").resolve()
        out = Path(tempfile.mkdtemp(prefix="widget-proxy-editable-"))
        finder = out / "_widget_proxy_finder.py"
        finder.write_text(FINDER.format(init=str(folder / "__init__.py"), folder=str(folder)))
        hook = out / "_widget_proxy_finder.pth"
        hook.write_text("import _widget_proxy_finder\n")
        build_data["force_include_editable"][str(finder)] = finder.name
        build_data["force_include_editable"][str(hook)] = hook.name
