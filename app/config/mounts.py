"""Where each widget of a config file is served: its `mount` path, checked alone and
against the others.

A mount is one or more path segments (`/rewards`, `/shop/support`), no trailing slash,
nothing a browser would rewrite (`.`, `..`) or escape. Two widgets may not share a
mount, nor may one sit inside another (`/shop` and `/shop/support`: which one answers
`/shop/support/widget` would depend on the order). The root's own paths (`/healthz`,
`/readyz`, `/metrics`) are not mounts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

_MOUNT: Final = re.compile(r"(/[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,63}){1,8}")
# Answered by the process itself (`multi.root`), whatever is mounted.
ROOT_PATHS: Final = ("/healthz", "/readyz", "/metrics")


def mount_path(raw: object) -> str:
    """The mount as written, checked; ValueError says what is wrong with it."""
    if not isinstance(raw, str):
        raise ValueError('must be a path such as "/rewards"')
    if not _MOUNT.fullmatch(raw):
        raise ValueError(
            f"{raw!r} is not a mount path: /name or /name/name (letters, digits, . _ ~ -),"
            " no trailing slash"
        )
    if raw in ROOT_PATHS:
        raise ValueError(f"{raw} is the process's own path ({', '.join(ROOT_PATHS)})")
    return raw


def overlaps(mounts: Mapping[str, str]) -> list[str]:
    """One problem for each widget whose mount is another's, or inside another's;
    `mounts` is widget name → mount path, in the file's order."""
    problems = []
    seen: list[tuple[str, str]] = []
    for name, path in mounts.items():
        for other, taken in seen:
            if path == taken:
                problems.append(f"widgets.{name}: mount: {path} is widgets.{other}'s mount too")
            elif inside(path, taken) or inside(taken, path):
                outer, inner = (taken, path) if inside(path, taken) else (path, taken)
                problems.append(
                    f"widgets.{name}: mount: {inner} is inside {outer}"
                    f" (widgets.{other}); mounts must not nest"
                )
        seen.append((name, path))
    return problems


def inside(path: str, outer: str) -> bool:
    return path.startswith(outer + "/")
