"""The layers `docs/architecture.md` draws are the code's: every import under `app/`
goes to the importer's own layer or one below it, every module has a layer, and no
imports run in a circle.

Read with `ast` (nothing is imported), relative imports resolved as Python does.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"
DOC = ROOT / "docs" / "architecture.md"
PACKAGE = "widget_proxy"


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, e.g. widget_proxy.cache.pages
    target: str  # the imported module
    line: int


def layer_table() -> list[tuple[str, tuple[str, ...]]]:
    """The table under `## Layers`, from the top: each layer's name and its entries
    (`name.py`, or `folder/` for everything in it)."""
    section = DOC.read_text().split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    table = []
    for row in rows[1:]:  # past the header (the `|---|` line doesn't start with "| ")
        name, modules = (cell.strip() for cell in row.strip("|").split("|")[:2])
        table.append((name, tuple(re.findall(r"`([^`]+)`", modules))))
    return table


def module_name(path: Path) -> str:
    parts = list(path.relative_to(APP).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    elif parts == ["__init__"]:
        parts = []
    return ".".join([PACKAGE, *parts])


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(APP.rglob("*.py"))}


def layer_of(path: Path, table: list[tuple[str, tuple[str, ...]]]) -> int | None:
    """The index (0: the top) of the layer whose entry holds `path`, the longest entry winning."""
    relative = path.relative_to(APP).as_posix()
    best: tuple[int, int] | None = None
    for index, (_, entries) in enumerate(table):
        for entry in entries:
            holds = entry == relative or (entry.endswith("/") and relative.startswith(entry))
            if holds and (best is None or len(entry) > best[1]):
                best = (index, len(entry))
    return None if best is None else best[0]


def imports(name: str, path: Path, known: dict[str, Path]) -> list[Import]:
    """Every import of a module of the package in `path` (in functions too)."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            # `from . import x` imports the module x where there is one.
            targets = [
                f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in known else origin
                for alias in node.names
            ]
        else:
            continue
        found += [
            Import(name, target, node.lineno)
            for target in dict.fromkeys(targets)
            if target == PACKAGE or target.startswith(PACKAGE + ".")
        ]
    return found


def all_imports() -> list[Import]:
    known = modules()
    return [found for name, path in known.items() for found in imports(name, path, known)]


def where(found: Import) -> str:
    return f"{modules()[found.source].relative_to(ROOT)}:{found.line}"


def test_the_table_places_every_module() -> None:
    table = layer_table()
    unplaced = [
        str(path.relative_to(ROOT)) for path in modules().values() if layer_of(path, table) is None
    ]

    assert table, "no layer table found under ## Layers"
    assert not unplaced, f"modules docs/architecture.md's layer table does not place: {unplaced}"


def test_the_table_names_no_module_that_is_gone() -> None:
    gone = [
        entry for _, entries in layer_table() for entry in entries if not (APP / entry).exists()
    ]

    assert not gone


def test_no_module_imports_from_a_higher_layer() -> None:
    table = layer_table()
    known = modules()
    upward = []
    for found in all_imports():
        source = layer_of(known[found.source], table)
        target = layer_of(known[found.target], table)
        if source is not None and target is not None and target < source:
            upward.append(
                f"{where(found)}: {found.source} ({table[source][0]})"
                f" imports {found.target} ({table[target][0]})"
            )

    assert not upward, "imports that run back up:\n" + "\n".join(upward)


def test_no_import_cycle() -> None:
    edges: dict[str, list[Import]] = {}
    for found in all_imports():
        if found.target != found.source:
            edges.setdefault(found.source, []).append(found)
    done: set[str] = set()
    cycles: list[str] = []

    def visit(name: str, path: list[Import], on_path: set[str]) -> None:
        for found in edges.get(name, []):
            if found.target in on_path:
                start = next(i for i, f in enumerate(path) if f.source == found.target)
                loop = [*path[start:], found]
                cycles.append(" → ".join(f"{f.source} ({where(f)})" for f in loop))
            elif found.target not in done:
                visit(found.target, [*path, found], on_path | {found.target})
        done.add(name)

    for name in sorted(edges):
        if name not in done:
            visit(name, [], {name})

    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_module_is_over_400_lines() -> None:
    # A module that long holds more than one concept: split it by what it does.
    long = {
        path.relative_to(ROOT).as_posix(): lines
        for folder in (APP, ROOT / "bench")
        for path in folder.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > 400
    }
    assert long == {}
