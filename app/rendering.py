"""The pages the proxy renders itself, found and loaded once: Jinja2 over `templates/`.

Templates live in the top-level `templates/` folder of a checkout; an installed
wheel carries them as `widget_proxy/templates`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import jinja2

_PACKAGE = Path(__file__).resolve().parent
TEMPLATES_DIR: Final = next(
    p for p in (_PACKAGE / "templates", _PACKAGE.parent / "templates", _PACKAGE) if p.is_dir()
)

environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def render(name: str, **context: Any) -> str:
    return environment.get_template(name).render(**context)
