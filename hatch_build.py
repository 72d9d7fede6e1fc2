"""Editable installs of the `app/` folder under its import name, `widget_proxy`.

Hatchling renames a folder in a built wheel (`sources`), but an editable install can
only add folders to `sys.path`; adding the checkout itself would make the source
folder importable as `app`, the very name of a merchant's own package. So the
editable install adds `build/editable/` instead, where this hook puts one link:
`widget_proxy -> ../../app`. Imports, type checkers and the tests all follow it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

LINK_DIR = Path("build", "editable")


class EditableImportName(BuildHookInterface):  # type: ignore[type-arg]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version != "editable":
            return
        folder = Path(self.root, LINK_DIR)
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / "widget_proxy"
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(Path("..", "..", "app"), link, target_is_directory=True)
