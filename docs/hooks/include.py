"""MkDocs hook: a page that says `<!-- include: NAME -->` shows the top-level file NAME.

BENCHMARKS.md stays at the top of the repository, where the benchmark's users and its
other editors find it; the site's Benchmarks page is its text, with its links made
relative to `docs/` (its `docs/bench.svg` is the page's `bench.svg`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

INCLUDE = re.compile(r"<!-- include: ([\w.-]+) -->")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    root = Path(config.config_file_path).parent

    def included(match: re.Match[str]) -> str:
        text = (root / match.group(1)).read_text()
        return text.replace("](docs/", "](")

    return INCLUDE.sub(included, markdown)
