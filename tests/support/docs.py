"""The README and the docs site as the tests read them: pages, and the marked code blocks.

A block a merchant copies is marked by a comment on the line before its fence:

    <!-- test: fastapi-app -->
    ```python
    ...
    ```

`block(name)` returns that code, from every page that has it (the README and
`docs/**/*.md`); copies on two pages must be identical, so a fix can't reach one and
miss the other. `tests/suites/test_docs.py` and the nginx tests run what it returns.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
README: Final = ROOT / "README.md"
DOCS: Final = ROOT / "docs"
# The marker, the fence that follows it (its language, if any), and the code up to the
# fence that closes it.
MARKED: Final = re.compile(
    r"^<!-- test: ([\w-]+) -->\n(`{3,})[\w-]*\n(.*?)^\2$", re.MULTILINE | re.DOTALL
)


def pages() -> list[Path]:
    """Every markdown page a reader sees: the README, then the site's pages."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def page(name: str) -> str:
    """The text of `name`: `README.md`, or a page's path under `docs/` (`settings.md`)."""
    return (README if name == "README.md" else DOCS / name).read_text()


def marked_blocks() -> dict[str, list[tuple[Path, str]]]:
    """Each marked block's copies, by name: where each one is, and its code."""
    found: dict[str, list[tuple[Path, str]]] = {}
    for path in pages():
        for name, _fence, code in MARKED.findall(path.read_text()):
            found.setdefault(name, []).append((path, code))
    return found


def block(name: str) -> str:
    """The code of the block marked `name`, the same on every page that has it."""
    copies = marked_blocks().get(name, [])
    assert copies, f"no block is marked <!-- test: {name} --> in the README or docs/"
    texts = {code for _path, code in copies}
    where = ", ".join(str(path.relative_to(ROOT)) for path, _code in copies)
    assert len(texts) == 1, f"the copies of {name!r} differ ({where}): make them one text"
    return texts.pop()
